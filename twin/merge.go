package twin

import "edgenode/bus"

// Merging a device's reports to the cloud (comm.send). The cloud applies
// an edge_updated report twin by twin and side by side: for each twin it
// lists, an actual value becomes the reported value and an expected value
// the observed desired value, each with its timestamp and the twin's type
// (KubeEdge v1.23.1 cloud/pkg/devicecontroller/controller/upstream.go,
// updateDeviceStatus). One report that holds, for every twin and side, the
// newest entry of a run of reports therefore leaves the cloud where the
// run would have.

// merge returns the pending report p with the newer report msg (twins its
// content, nil for a state report) merged in. p keeps its id, so the
// cloud's confirmation of the merged report finds it; its content is
// encoded again when it is sent.
func merge(p pendingMsg, msg bus.Message, twins *twinMessage) pendingMsg {
	p.msg.Header.Timestamp = msg.Header.Timestamp
	if p.twins == nil || twins == nil {
		// A state report sets the device's state and last online time as
		// a whole: the newest is all of it.
		p.msg.Content = msg.Content
		return p
	}
	mergeTwins(p.twins, twins, true)
	p.twins.EventID, p.twins.Timestamp = twins.EventID, twins.Timestamp
	p.msg.Content = nil
	return p
}

// mergeTwins merges the entries of src into dst, which the caller owns;
// src is the newer report when newer is set, else the older one. The
// entries themselves are not changed: they may be in a report already
// sent.
func mergeTwins(dst, src *twinMessage, newer bool) {
	if dst.Twin == nil {
		dst.Twin = make(map[string]*msgTwin, len(src.Twin))
	}
	for k, s := range src.Twin {
		d, ok := dst.Twin[k]
		switch {
		case !ok:
			dst.Twin[k] = s
		case newer:
			dst.Twin[k] = mergeTwin(d, s)
		default:
			dst.Twin[k] = mergeTwin(s, d)
		}
	}
}

// mergeTwin returns the entry of one twin that tells the cloud what a and
// then b told it. Each side (expected, actual) is b's if b has a value
// for it, else a's, with its version: a version belongs with the value it
// was given to. b's optional and type win: they are the twin's now. A
// deleted twin (b a tombstone, or nil) replaces what came before it: the
// values a carried no longer exist at the edge.
func mergeTwin(a, b *msgTwin) *msgTwin {
	if a == nil || b == nil || (b.Metadata != nil && b.Metadata.Type == typeDeleted) {
		return b
	}
	m := *b
	if m.Expected == nil && (a.Expected != nil || m.ExpectedVersion == nil) {
		m.Expected, m.ExpectedVersion = a.Expected, a.ExpectedVersion
	}
	if m.Actual == nil && (a.Actual != nil || m.ActualVersion == nil) {
		m.Actual, m.ActualVersion = a.Actual, a.ActualVersion
	}
	if m.Optional == nil {
		m.Optional = a.Optional
	}
	if m.Metadata == nil {
		m.Metadata = a.Metadata
	}
	return &m
}
