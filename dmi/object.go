package dmi

import (
	"encoding/json"
	"fmt"
	"slices"
)

// device is a v1beta1 Device as the cloud sent it and meta stored it.
type device struct {
	ns, name string
	protocol string // spec.protocol.protocolName: which mapper serves it
	model    string // spec.deviceModelRef.name, in the device's namespace
	raw      []byte // the object's JSON
	spec     string // spec as canonical JSON, to see whether it changed
}

// model is a v1beta1 DeviceModel as the cloud sent it.
type model struct {
	ns, name string
	protocol string // spec.protocol: which mapper serves it
	raw      []byte
}

func key(ns, name string) string { return ns + "/" + name }

// parseDevice reads the parts of a Device the module routes by. ns and
// name come from the resource path; the object's metadata is not trusted
// over it.
func parseDevice(ns, name string, raw []byte) (device, error) {
	o, err := decodeJSON(raw)
	if err != nil {
		return device{}, err
	}
	spec, _ := o["spec"].(obj)
	proto, _ := spec["protocol"].(obj)
	ref, _ := spec["deviceModelRef"].(obj)
	d := device{ns: ns, name: name, raw: raw}
	d.protocol, _ = proto["protocolName"].(string)
	d.model, _ = ref["name"].(string)
	// Canonical: encoding/json sorts map keys.
	s, err := json.Marshal(spec)
	if err != nil {
		return device{}, fmt.Errorf("%w: %v", ErrConvert, err)
	}
	d.spec = string(s)
	return d, nil
}

func parseModel(ns, name string, raw []byte) (model, error) {
	o, err := decodeJSON(raw)
	if err != nil {
		return model{}, err
	}
	spec, _ := o["spec"].(obj)
	m := model{ns: ns, name: name, raw: raw}
	m.protocol, _ = spec["protocol"].(string)
	return m, nil
}

// deviceMessage encodes d as a DMI Device, with the defaults of its model
// m (nil if unknown) merged in. As edgecore's ConvertDevice
// (dtcommon/util.go v1.23.1): name and namespace from the object,
// spec.deviceModelRef.name as spec.deviceModelReference, and
// spec.stateReport's reportCycle and reportToCloud as status's.
func deviceMessage(d device, m *model) ([]byte, error) {
	o, err := decodeJSON(d.raw)
	if err != nil {
		return nil, err
	}
	spec, _ := o["spec"].(obj)
	if spec == nil {
		spec = obj{}
	}
	wrapConfigData(spec)
	if m != nil {
		mo, err := decodeJSON(m.raw)
		if err != nil {
			return nil, err
		}
		mspec, _ := mo["spec"].(obj)
		wrapConfigData(mspec)
		override(spec, mspec)
	}
	spec["deviceModelReference"] = d.model
	status, _ := o["status"].(obj)
	if sr, ok := spec["stateReport"].(obj); ok {
		if status == nil {
			status = obj{}
		}
		status["reportCycle"], status["reportToCloud"] = sr["reportCycle"], sr["reportToCloud"]
	}
	pb := obj{"name": d.name, "namespace": d.ns, "spec": spec}
	if status != nil {
		pb["status"] = status
	}
	return deviceS.encode(nil, pb)
}

// modelMessage encodes m as a DMI DeviceModel (ConvertDeviceModel).
func modelMessage(m model) ([]byte, error) {
	o, err := decodeJSON(m.raw)
	if err != nil {
		return nil, err
	}
	pb := obj{"name": m.name, "namespace": m.ns, "spec": o["spec"]}
	return modelS.encode(nil, pb)
}

// wrapConfigData puts each configData of a device or model spec in the
// shape of the Go type and of DMI's CustomizedValue, {"data": {...}}. On
// the wire the cloud sends it flat: CustomizedValue's MarshalJSON writes
// only its Data map (KubeEdge v1.23.1
// staging/src/github.com/kubeedge/api/apis/devices/v1beta1/device_instance_types.go),
// so a "data" key in it is one of the user's keys, never the wrapper.
func wrapConfigData(spec obj) {
	wrap := func(o obj, key string) {
		if v, ok := o[key].(obj); ok {
			o[key] = obj{"data": v}
		}
	}
	if spec == nil {
		return
	}
	wrap(spec, "protocolConfigData") // a model's
	if proto, ok := spec["protocol"].(obj); ok {
		wrap(proto, "configData")
	}
	props, _ := spec["properties"].([]any)
	for _, p := range props {
		prop, ok := p.(obj)
		if !ok {
			continue
		}
		if v, ok := prop["visitors"].(obj); ok {
			wrap(v, "configData")
		}
		if pm, ok := prop["pushMethod"].(obj); ok {
			wrap(pm, "anomalyDetection")
		}
	}
}

// override merges a model's defaults into a device's spec the way
// edgecore's DMI cache does (dmicache/dmicache.go v1.23.1,
// overrideDeviceInstanceConfig): a property whose model property has
// visitors takes the model's visitors, and then the instance's own
// visitor configData keys win over the model's; the protocol's configData
// starts from the model's protocolConfigData and the instance's keys win.
func override(spec, mspec obj) {
	mprops, _ := mspec["properties"].([]any)
	props, _ := spec["properties"].([]any)
	for _, p := range props {
		prop, ok := p.(obj)
		if !ok {
			continue
		}
		origVisitors, _ := prop["visitors"].(obj)
		if mv := modelVisitors(mprops, prop["name"]); mv != nil {
			prop["visitors"] = clone(mv)
		}
		origCD, _ := origVisitors["configData"].(obj)
		if origCD["data"] == nil {
			continue
		}
		v, ok := prop["visitors"].(obj)
		if !ok {
			v = obj{}
			prop["visitors"] = v
		}
		merge(v, origCD)
	}
	proto, ok := spec["protocol"].(obj)
	if !ok {
		proto = obj{}
		spec["protocol"] = proto
	}
	origCD, _ := proto["configData"].(obj)
	delete(proto, "configData")
	if mcd, ok := mspec["protocolConfigData"].(obj); ok {
		proto["configData"] = clone(mcd)
	}
	if origCD["data"] != nil {
		merge(proto, origCD)
	}
}

// merge lays the instance's configData cd over parent's: key by key when
// both have data, else the instance's whole.
func merge(parent, cd obj) {
	cur, _ := parent["configData"].(obj)
	data, _ := cur["data"].(obj)
	inst, ok := cd["data"].(obj)
	if data == nil || !ok {
		parent["configData"] = cd
		return
	}
	for k, v := range inst {
		data[k] = v
	}
}

// modelVisitors returns the visitors of the model property named name.
func modelVisitors(mprops []any, name any) obj {
	i := slices.IndexFunc(mprops, func(p any) bool {
		mp, ok := p.(obj)
		return ok && mp["name"] == name
	})
	if i < 0 {
		return nil
	}
	v, _ := mprops[i].(obj)["visitors"].(obj)
	return v
}

// clone deep-copies a decoded JSON value.
func clone(v obj) obj {
	out := make(obj, len(v))
	for k, x := range v {
		out[k] = cloneAny(x)
	}
	return out
}

func cloneAny(x any) any {
	switch y := x.(type) {
	case obj:
		return clone(y)
	case []any:
		l := make([]any, len(y))
		for i, e := range y {
			l[i] = cloneAny(e)
		}
		return l
	}
	return x
}
