// Package dmipb holds Go types and grpc-go stubs generated from dmi.proto,
// KubeEdge's DMI v1beta1 schema, for tests only: package dmi's tests run a
// stock grpc-go mapper and client built from them to prove that edgenode's
// hand-written protowire encoding and package rpc are wire compatible. The
// edgenode binary never imports this package or grpc-go (TestNoGRPCInBinary
// in package dmi checks). The generated files are committed so that tests
// need no protoc; dmi.proto says how to regenerate them.
package dmipb
