"""Generated protobuf/gRPC stubs. Do not edit: run scripts/gen_proto.py."""
