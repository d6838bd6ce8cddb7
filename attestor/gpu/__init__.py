"""Where the agent's timed answer z_j = SHA-256(r || c_j) is produced.

The answer must come from something that never queues behind the chip's workload while
the landmark's clock runs. :class:`CpuResponder` is the path everywhere; on a machine
with CUDA (and CuPy), :class:`geoattest.attestor.gpu.cuda.ArmedResponder` computes the same z_j
in a resident kernel that holds r in GPU memory and is armed *before* the round opens,
so any wait for the GPU happens off the clock (docs/GPU.md). Every responder follows
:class:`RoundResponder`: ``arm(r)``, then ``answer(c_j)`` per challenge, then
``close()``, which the driver calls before it reveals r.

Nothing here imports CuPy or the protocol's protobuf code, so the module loads anywhere.

Example:

>>> import os
>>> from geoattest.protocol.round import answer
>>> secret, challenge = os.urandom(32), os.urandom(16)
>>> with CpuResponder() as responder:
...     responder.arm(secret)
...     responder.answer(challenge) == answer(secret, challenge)
True
"""

from geoattest.attestor.gpu.base import (
    ANSWER_BYTES,
    CHALLENGE_BYTES,
    SECRET_BYTES,
    CpuResponder,
    GpuUnavailableError,
    ResponderError,
    RoundResponder,
    source_path,
)

__all__ = [
    "ANSWER_BYTES",
    "CHALLENGE_BYTES",
    "SECRET_BYTES",
    "CpuResponder",
    "GpuUnavailableError",
    "ResponderError",
    "RoundResponder",
    "source_path",
]
