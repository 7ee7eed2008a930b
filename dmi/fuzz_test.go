package dmi

import (
	"testing"

	"google.golang.org/protobuf/proto"

	"edgenode/dmi/dmipb"
)

func marshal(f *testing.F, m proto.Message) []byte {
	b, err := proto.Marshal(m)
	if err != nil {
		f.Fatal(err)
	}
	return b
}

// FuzzDecode feeds mapper bytes to the three request decoders. They must
// not panic, and what they accept must agree with the generated types.
func FuzzDecode(f *testing.F) {
	f.Add(marshal(f, &dmipb.MapperRegisterRequest{WithData: true, Mapper: &dmipb.MapperInfo{Name: "m", Protocol: "modbus", Address: []byte("/x.sock")}}))
	f.Add(marshal(f, &dmipb.ReportDeviceStatusRequest{DeviceName: "d", DeviceNamespace: "ns", ReportedDevice: &dmipb.DeviceStatus{
		Twins: []*dmipb.Twin{{PropertyName: "t", Reported: &dmipb.TwinProperty{Value: "1", Metadata: map[string]string{"a": "b"}}}}}}))
	f.Add(marshal(f, &dmipb.ReportDeviceStatesRequest{DeviceName: "d", DeviceNamespace: "ns", State: "online"}))
	f.Add([]byte{0x0a, 0xff})
	f.Add([]byte{0x08})
	f.Fuzz(func(t *testing.T, b []byte) {
		if _, mi, err := decodeRegister(b); err == nil {
			var want dmipb.MapperRegisterRequest
			if proto.Unmarshal(b, &want) == nil && mi.Protocol != want.GetMapper().GetProtocol() {
				t.Errorf("decodeRegister() protocol = %q, want %q", mi.Protocol, want.GetMapper().GetProtocol())
			}
		}
		if _, name, twins, err := decodeStatus(b); err == nil {
			var want dmipb.ReportDeviceStatusRequest
			if proto.Unmarshal(b, &want) == nil && (name != want.DeviceName || len(twins) != len(want.GetReportedDevice().GetTwins())) {
				t.Errorf("decodeStatus() = %q, %d twins, want %q, %d", name, len(twins), want.DeviceName, len(want.GetReportedDevice().GetTwins()))
			}
		}
		if ns, name, state, err := decodeStates(b); err == nil {
			var want dmipb.ReportDeviceStatesRequest
			if proto.Unmarshal(b, &want) == nil && (ns != want.DeviceNamespace || name != want.DeviceName || state != want.State) {
				t.Errorf("decodeStates() = %q %q %q, want %v", ns, name, state, &want)
			}
		}
	})
}

// FuzzConvert feeds cloud bytes (a stored Device and DeviceModel) to the
// conversion: no panic, and whatever it encodes parses as the generated
// types.
func FuzzConvert(f *testing.F) {
	f.Add(deviceWith("20"), modelJSON)
	f.Add(`{"spec":{"properties":[null,{"visitors":{"configData":{"data":{"a":[1]}}}}]}}`, `{"spec":{"properties":[{"name":1}]}}`)
	f.Add(`{"spec":{"protocol":"x","properties":{}}}`, `{"spec":{"protocolConfigData":{"data":null}}}`)
	f.Fuzz(func(t *testing.T, dev, mod string) {
		d, err := parseDevice("ns", "d", []byte(dev))
		if err != nil {
			return
		}
		md, merr := parseModel("ns", "m", []byte(mod))
		var mp *model
		if merr == nil {
			mp = &md
		}
		if b, err := deviceMessage(d, mp); err == nil {
			if err := proto.Unmarshal(b, &dmipb.Device{}); err != nil {
				t.Errorf("deviceMessage(%s) does not parse: %v", dev, err)
			}
		}
		if merr == nil {
			if b, err := modelMessage(md); err == nil {
				if err := proto.Unmarshal(b, &dmipb.DeviceModel{}); err != nil {
					t.Errorf("modelMessage(%s) does not parse: %v", mod, err)
				}
			}
		}
	})
}
