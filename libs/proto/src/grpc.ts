// The standard gRPC services every server of ours implements (generated from grpc-java's protos).
export * from "./gen/grpc/health/v1/health_pb.js";
export * from "./gen/grpc/reflection/v1/reflection_pb.js";
