package dmi

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"edgenode/bus"
	"edgenode/db"
	"edgenode/rpc"
)

// Methods of DeviceManagerService, served by the edge (proto of KubeEdge
// v1.23.1).
const (
	methodRegister = "/v1beta1.DeviceManagerService/MapperRegister"
	methodStatus   = "/v1beta1.DeviceManagerService/ReportDeviceStatus"
	methodStates   = "/v1beta1.DeviceManagerService/ReportDeviceStates"
)

// Device API topics that twin serves (docs/protocol.md 4.2); DMI reports enter
// twin as if they came from MQTT, as edgecore's DMI server does
// (dmiserver/server.go v1.23.1, handleDeviceTwin, handleDeviceState).
const (
	topicDevicePrefix = "$hw/events/device/"
	topicTwinUpdate   = "/twin/update"
	topicStateUpdate  = "/state/update"
)

// mapperRegister answers MapperRegister: it stores the registration,
// (re)points the protocol's client at the mapper's socket and, with
// withData, answers with every device of the mapper's protocol and their
// models (dmiserver/server.go, MapperRegister). The answer comes from
// memory: the mapper-framework gives up after 1 s.
func (m *DMI) mapperRegister(ctx context.Context, req []byte) ([]byte, error) {
	if !m.lim.allow() {
		return m.reject(rpc.ResourceExhausted, "too many requests")
	}
	withData, mi, err := decodeRegister(req)
	if err != nil {
		return m.reject(rpc.InvalidArgument, err.Error())
	}
	if mi.Protocol == "" {
		return m.reject(rpc.InvalidArgument, "mapper protocol is empty")
	}
	if len(mi.Address) == 0 {
		return m.reject(rpc.InvalidArgument, "mapper address is empty")
	}
	b, _ := json.Marshal(mi)
	if err := m.db.UpsertMeta(ctx, db.Meta{Key: mapperKey(mi.Protocol), Type: string(bus.KindDeviceMapper), Value: string(b)}); err != nil {
		return nil, rpc.Errorf(rpc.Internal, "store the registration: %v", err)
	}
	m.mu.Lock()
	mp, ok := m.addMapperLocked(mi)
	m.mu.Unlock()
	if !ok {
		return m.reject(rpc.ResourceExhausted, "too many mappers")
	}
	m.stats.registrations.Add(1)
	m.log.Info("mapper registered", "name", mi.Name, "protocol", mi.Protocol, "socket", socketPath(mi.Address), "with_data", withData)
	if !withData {
		return nil, nil
	}
	mp.clear()
	return registerResponse(m.registration(mi.Protocol)), nil
}

// reportStatus answers ReportDeviceStatus: the twins go to twin as one twin
// update of the device (expected = observedDesired, actual = reported),
// which twin handles like an MQTT twin update: committed, published, and
// sent to the cloud as device/<ns>/<name>/twin/edge_updated.
func (m *DMI) reportStatus(ctx context.Context, req []byte) ([]byte, error) {
	if !m.lim.allow() {
		return m.reject(rpc.ResourceExhausted, "too many requests")
	}
	ns, name, twins, err := decodeStatus(req)
	if err != nil {
		return m.reject(rpc.InvalidArgument, err.Error())
	}
	id, ok := deviceID(ns, name)
	if !ok {
		return m.reject(rpc.InvalidArgument, "bad device name or namespace")
	}
	if len(twins) == 0 {
		return m.reject(rpc.InvalidArgument, "the report has no twin data")
	}
	type value struct {
		Value string `json:"value"`
	}
	type msgTwin struct {
		Expected *value `json:"expected,omitempty"`
		Actual   *value `json:"actual,omitempty"`
	}
	upd := struct {
		EventID   string              `json:"event_id"`
		Timestamp int64               `json:"timestamp"`
		Twin      map[string]*msgTwin `json:"twin"`
	}{Timestamp: time.Now().UnixMilli(), Twin: map[string]*msgTwin{}}
	for _, t := range twins {
		if t.property == "" {
			return m.reject(rpc.InvalidArgument, "a twin has no property name")
		}
		if t.desired == nil && t.reported == nil {
			continue // nothing to report
		}
		mt := &msgTwin{}
		// edgecore dereferences both; a mapper that leaves one out
		// reports only the other.
		if t.desired != nil {
			mt.Expected = &value{*t.desired}
		}
		if t.reported != nil {
			mt.Actual = &value{*t.reported}
		}
		upd.Twin[t.property] = mt
	}
	if len(upd.Twin) == 0 {
		return m.reject(rpc.InvalidArgument, "the report has no twin values")
	}
	b, _ := json.Marshal(upd)
	return m.toTwin(ctx, topicDevicePrefix+id+topicTwinUpdate, b)
}

// reportStates answers ReportDeviceStates: the state goes to twin as a
// state update of the device, which twin checks, stores and sends to the
// cloud as device/<ns>/<name>/state/update.
func (m *DMI) reportStates(ctx context.Context, req []byte) ([]byte, error) {
	if !m.lim.allow() {
		return m.reject(rpc.ResourceExhausted, "too many requests")
	}
	ns, name, state, err := decodeStates(req)
	if err != nil {
		return m.reject(rpc.InvalidArgument, err.Error())
	}
	id, ok := deviceID(ns, name)
	if !ok || state == "" {
		return m.reject(rpc.InvalidArgument, "the request needs a device name and a state")
	}
	b, _ := json.Marshal(struct {
		EventID   string `json:"event_id"`
		Timestamp int64  `json:"timestamp"`
		State     string `json:"state"`
	}{Timestamp: time.Now().UnixMilli(), State: state})
	return m.toTwin(ctx, topicDevicePrefix+id+topicStateUpdate, b)
}

// toTwin hands a device API request to twin as the eventbus does (source
// bus, the topic as the resource, the payload as it is, client id "dmi"
// for twin's per-client share) and waits for twin's answer, which comes
// once the report is committed or refused: a mapper hears OK only for a
// report that survives a power cut, as an MQTT client gets its result.
func (m *DMI) toTwin(ctx context.Context, topic string, payload []byte) ([]byte, error) {
	msg := bus.NewMessage(bus.ModuleBusSrc, bus.GroupUser, bus.OpResponse, topic, payload)
	msg.Header.Type = dmiClient
	resp, err := m.bus.SendSync(ctx, bus.ModuleTwin, msg, m.cfg.CallTimeout)
	if err != nil {
		return nil, rpc.Errorf(rpc.Unavailable, "device twin: %v", err)
	}
	var r struct {
		Code   int    `json:"code"`
		Reason string `json:"reason"`
	}
	if err := json.Unmarshal(resp.Content, &r); err != nil {
		return nil, rpc.Errorf(rpc.Internal, "device twin: answer %q", resp.Content)
	}
	switch r.Code {
	case http.StatusOK:
		m.stats.reports.Add(1)
		return nil, nil
	case http.StatusBadRequest:
		return m.reject(rpc.InvalidArgument, r.Reason)
	case http.StatusNotFound:
		return m.reject(rpc.NotFound, r.Reason)
	case http.StatusServiceUnavailable:
		return m.reject(rpc.Unavailable, r.Reason)
	}
	return m.reject(rpc.Internal, r.Reason)
}

// dmiClient is the client id of mapper reports on twin's path.
const dmiClient = "dmi"

func (m *DMI) reject(code rpc.Code, msg string) ([]byte, error) {
	m.stats.rejected.Add(1)
	return nil, rpc.Errorf(code, "%s", msg)
}

// deviceID is the twin's device id: <namespace>/<name>, or the name alone
// for a mapper that sends no namespace. Levels must be free of '/' and
// MQTT wildcards.
func deviceID(ns, name string) (string, bool) {
	for _, s := range []string{ns, name} {
		if strings.ContainsAny(s, "/+#\x00") {
			return "", false
		}
	}
	switch {
	case name == "":
		return "", false
	case ns == "":
		return name, true
	}
	return ns + "/" + name, true
}
