// Package dmi serves KubeEdge's Device Management Interface (DMI v1beta1)
// so that mappers built with KubeEdge's mapper-framework (modbus, onvif,
// virtual, ...) run unchanged on edgenode. It is edgecore's DMI server,
// DMI client and DMI cache in one module (KubeEdge v1.23.1
// edge/pkg/devicetwin/dmiserver, dmiclient, dmicache, dtmanager/dmiworker.go).
//
// In:
//   - gRPC calls from mappers on a unix socket (Config.Socket, default
//     /etc/kubeedge/dmi.sock), through package rpc: MapperRegister,
//     ReportDeviceStatus, ReportDeviceStates of
//     /v1beta1.DeviceManagerService, under one token bucket (Config.Rate,
//     Config.Burst). Errors are gRPC statuses: InvalidArgument for a bad
//     or incomplete request, ResourceExhausted over the rate.
//   - bus messages to module "dmi" from meta: the cloud's insert, update
//     and delete of <ns>/device/<name> and <ns>/devicemodel/<name>
//     (v1beta1 Device and DeviceModel JSON, sent by the device
//     controller since KubeEdge v1.15), after meta stored them.
//
// Out:
//   - MapperRegister answers: every device of the mapper's protocol, with
//     its model's visitor and protocol configData merged in as edgecore
//     does, and those models, from memory (the mapper waits 1 s;
//     BenchmarkRegistration measures the answer for 100 devices, which
//     must stay well inside that second on a Pi Zero).
//     configData values travel as google.protobuf.Any wrappers (strings as
//     StringValue, numbers as FloatValue, booleans as BoolValue).
//   - calls to the registered mapper of each protocol (the address in its
//     MapperInfo): RegisterDevice, UpdateDevice (whenever the spec changed,
//     a desired value included), RemoveDevice, CreateDeviceModel,
//     UpdateDeviceModel, RemoveDeviceModel. A mapper that is away is
//     retried with capped, jittered back-off (Config.RetryMin..RetryMax);
//     at most Config.MaxPending calls wait per mapper. A device or model
//     of a protocol with no registered mapper is sent to nobody: the
//     mapper gets it in its MapperRegister answer.
//   - reports, to module twin, in the eventbus's form of an MQTT twin or
//     state update of the device ($hw/events/device/<ns>/<name>/twin/update
//     and .../state/update), so twin handles them as it handles MQTT:
//     committed before anything is published, sent to the cloud as
//     device/<ns>/<name>/twin/edge_updated and .../state/update and kept
//     until the cloud confirms. A gRPC OK means twin has the report queued.
//
// Goroutines: Run's bus loop, the rpc server (net/http's goroutines), and
// one sender per registered mapper. Run returns after all have exited.
//
// Persistence: table meta. Devices and models are the rows meta stores
// (types device and devicemodel); registrations are rows of type
// devicemapper, key null/devicemapper/<protocol>, value the MapperInfo as
// JSON, written before MapperRegister answers. Run loads all three, so a
// restarted node answers mappers and calls them with the cloud away.
// Queued calls are not persisted: a mapper that registers again gets
// everything.
package dmi
