"""plugin layer: how Terraform reaches the provider (see the package docstring for the layering).

Public entry point: ``plugin.server.serve(servicer, *, debug=False) -> int`` serves an object
implementing ``tfplugin6_pb2_grpc.ProviderServicer`` the way go-plugin expects; an optional
``servicer.on_shutdown()`` is called once before gRPC stops.

Modules (imported lazily: Terraform starts the provider several times per command, so this
package keeps ``import`` cost low and never imports pyvmomi):
  handshake       go-plugin environment (magic cookie, protocol negotiation), handshake line,
                  private 0700 socket directory, unix/tcp listener choice
  certs           per-process self-signed server certificate (ECDSA P-256)
  tls_front       mutual TLS with Python's ssl in front of a plaintext gRPC socket (works with
                  Terraform's P-521 client certificate, which grpcio's TLS cannot request)
  server          serve(): gRPC server, health, go-plugin services, signals, debug/reattach mode
  go_plugin_services  GRPCController / GRPCStdio / GRPCBroker
  logging_setup   hclog-style JSON logs on stderr, TF_LOG*/TF_LOG_PROVIDER levels, secret redaction
  install         launcher in ~/.terraform.d/plugins (Terraform's implied local mirror)
  _generated      protoc output for proto/*.proto (scripts/gen_proto.py; do not edit)
"""
