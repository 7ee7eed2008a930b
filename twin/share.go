package twin

// codeUnavailable is the code of the error result of a request dropped for
// overload (HTTP 503): the app should back off and retry.
const codeUnavailable = 503

// ReasonOverload is the reason of that result.
const ReasonOverload = "twin: overloaded, retry later"

// The fair share of the twin path per MQTT client (Config.Share): each
// client may have at most Config.ClientShare requests queued for the
// workers, so one client's flood fills its own share, not the workers'
// queues that every client's request waits in. The eventbus takes a
// client's share before it sends the request (a request over it waits a
// moment on the flooding client's own goroutine, then is answered 503 by
// the eventbus); twin releases it when a worker takes the request. A request that finds its
// worker's queue full is answered 503 here. The client is the broker's
// client id, in the bus message's header type (mqtt.Ingress).

// fromMQTT reports whether j is an MQTT request, which holds a share.
func fromMQTT(j *job) bool { return j.topic != "" }

// dispatchShared queues an MQTT request, or answers it with an overload
// result. Without a Share from the sender, twin takes the share itself.
func (t *Twin) dispatchShared(w *worker, j job) {
	client := j.msg.Header.Type
	if !t.senderTakes && !t.share.Take(client) {
		t.overload(j)
		return
	}
	if !t.offer(w, j) {
		t.share.Release(client)
		t.overload(j)
	}
}

// done releases the share of an MQTT request taken from a worker's queue.
func (t *Twin) done(j *job) {
	if fromMQTT(j) {
		t.share.Release(j.msg.Header.Type)
	}
}

// overload answers a request dropped for overload on its result topic,
// with no event id: the request was not read.
func (t *Twin) overload(j job) {
	t.stats.overloaded.Add(1)
	t.publishError(j.topic+sufResult, "", codeUnavailable, ReasonOverload)
	t.answer(j, codeUnavailable, ReasonOverload)
}
