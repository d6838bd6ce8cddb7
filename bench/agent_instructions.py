"""Instruction counts of the agent's rounds and proof, whatever the load: run under callgrind.

Run::

    valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file=agent.%p \\
        python bench/agent_instructions.py

(about a minute). ``geoattest bench agent``'s workload (k = 4 landmarks in child processes,
n = 8 exchanges), with every wait blocking and no extra exchanges, so that each proof runs
the same rounds whatever the timing; 20 proofs to warm up, then collection is switched on
(``callgrind_control -i on``) around 50 more. Callgrind prints ``Collected``: divide by 50
for a proof. Only this process's user-space instructions count: the landmarks, the
kernel's side of each syscall, and the crypto's share (``crypto``: the proof's k + 1
signatures and k receipt verifications back to back) are told apart by the second run::

    valgrind ... python bench/agent_instructions.py crypto
"""

from __future__ import annotations

import gc
import os
import sys

from verifier_batch_instructions import collect

from geoattest.bench.agent import agent
from geoattest.wire.rounds import RoundSettings

PROOFS = 50
WARMUP = 20


def main() -> None:
    which = sys.argv[1] if len(sys.argv) > 1 else "proofs"
    with agent(4, 8) as bench:
        bench.settings = RoundSettings(exchanges=8, spin_below_s=0, extra_exchanges=0)
        for _ in range(WARMUP):
            bench.proof()
        gc.freeze()
        device = bench.device
        message = os.urandom(600)  # about a receipt's size
        signature = device.sign(message)
        collect(True)
        if which == "crypto":
            for _ in range(PROOFS):
                for _ in range(len(bench.endpoints) + 1):
                    device.sign(message)
                for _ in range(len(bench.endpoints)):
                    device.verifying_key.verify(signature, message)
        else:
            for _ in range(PROOFS):
                bench.proof()
        collect(False)


if __name__ == "__main__":
    main()
