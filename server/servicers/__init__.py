"""One servicer per gRPC service: validate, convert, call the facade, reply."""
