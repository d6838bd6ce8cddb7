"""Wire format: payload types, signed envelopes and safe decoding of protobuf messages."""
