"""xDS over gRPC for istiod's debug types: the protobuf wire format (`protowire`), the few
envoy messages they need (`messages`), one gRPC call over HTTP/2 (`grpcstream`)."""
