package dmi

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"

	"edgenode/rpc"
)

// Methods of DeviceMapperService, served by a mapper (proto of KubeEdge
// v1.23.1; the proto package is v1beta1).
const (
	methodRegisterDevice = "/v1beta1.DeviceMapperService/RegisterDevice"
	methodRemoveDevice   = "/v1beta1.DeviceMapperService/RemoveDevice"
	methodUpdateDevice   = "/v1beta1.DeviceMapperService/UpdateDevice"
	methodCreateModel    = "/v1beta1.DeviceMapperService/CreateDeviceModel"
	methodRemoveModel    = "/v1beta1.DeviceMapperService/RemoveDeviceModel"
	methodUpdateModel    = "/v1beta1.DeviceMapperService/UpdateDeviceModel"
)

// call is one queued call to a mapper. The request is built when it is
// sent, from the caches, so a retry carries the newest object.
type call struct {
	seq      uint64
	method   string
	ns, name string
}

// mapper is one registered mapper: its address and the calls waiting for
// it, in order.
type mapper struct {
	wake chan struct{} // a call was queued or the mapper registered again

	mu     sync.Mutex
	info   mapperInfo
	client *rpc.Client
	queue  []call
	seq    uint64
	max    int // rpc.ClientConfig.MaxMessage
}

func newMapper(mi mapperInfo, maxMessage int) *mapper {
	return &mapper{wake: make(chan struct{}, 1), info: mi, max: maxMessage,
		client: rpc.UnixClient(rpc.ClientConfig{MaxMessage: maxMessage}, socketPath(mi.Address))}
}

// update records a new registration of the mapper: a new address gets a
// new client.
func (mp *mapper) update(mi mapperInfo) {
	mp.mu.Lock()
	if string(mi.Address) != string(mp.info.Address) {
		mp.client.Close()
		mp.client = rpc.UnixClient(rpc.ClientConfig{MaxMessage: mp.max}, socketPath(mi.Address))
	}
	mp.info = mi
	mp.mu.Unlock()
	mp.signal()
}

// clear drops the queued calls: the mapper has just been given every
// device and model of its protocol.
func (mp *mapper) clear() {
	mp.mu.Lock()
	mp.queue = mp.queue[:0]
	mp.mu.Unlock()
}

// push queues c unless the same call is last in the queue already. It
// drops the oldest call beyond max and reports whether it did.
func (mp *mapper) push(c call, max int) (dropped bool) {
	mp.mu.Lock()
	if n := len(mp.queue); n > 0 && mp.queue[n-1].method == c.method && mp.queue[n-1].ns == c.ns && mp.queue[n-1].name == c.name {
		mp.mu.Unlock()
		return false
	}
	mp.seq++
	c.seq = mp.seq
	if len(mp.queue) >= max {
		mp.queue = append(mp.queue[:0], mp.queue[1:]...)
		dropped = true
	}
	mp.queue = append(mp.queue, c)
	mp.mu.Unlock()
	mp.signal()
	return dropped
}

func (mp *mapper) signal() {
	select {
	case mp.wake <- struct{}{}:
	default:
	}
}

// next returns the first queued call and the client to send it with.
func (mp *mapper) next() (call, *rpc.Client, bool) {
	mp.mu.Lock()
	defer mp.mu.Unlock()
	if len(mp.queue) == 0 {
		return call{}, nil, false
	}
	return mp.queue[0], mp.client, true
}

// done removes c from the head of the queue if it is still there (a
// registration may have cleared the queue meanwhile).
func (mp *mapper) done(c call) {
	mp.mu.Lock()
	defer mp.mu.Unlock()
	if len(mp.queue) > 0 && mp.queue[0].seq == c.seq {
		mp.queue = mp.queue[1:]
	}
}

func (mp *mapper) protocol() string {
	mp.mu.Lock()
	defer mp.mu.Unlock()
	return mp.info.Protocol
}

// sender sends the mapper's calls in order until ctx ends. A mapper that
// cannot be reached (not listening, restarting, too slow) is retried with
// capped, jittered back-off that resets on success or when the mapper
// registers again; any other answer, an error included, ends the call:
// the mapper has seen it and would refuse it again.
func (m *DMI) sender(ctx context.Context, mp *mapper) {
	defer func() {
		mp.mu.Lock()
		mp.client.Close()
		mp.mu.Unlock()
	}()
	backoff := m.cfg.RetryMin
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	failures := 0
	for {
		c, client, ok := mp.next()
		if !ok {
			select {
			case <-ctx.Done():
				return
			case <-mp.wake:
				continue
			}
		}
		req, ok := m.request(c)
		var err error
		if ok {
			cctx, cancel := context.WithTimeout(ctx, m.cfg.CallTimeout)
			_, err = client.Call(cctx, c.method, req)
			cancel()
		}
		if ctx.Err() != nil {
			return
		}
		if code := rpc.CodeOf(err); code == rpc.Unavailable || code == rpc.DeadlineExceeded {
			m.stats.retries.Add(1)
			failures++
			if failures == 1 || failures%10 == 0 {
				m.log.Warn("mapper away, will retry", "protocol", mp.protocol(), "call", c.method,
					"object", key(c.ns, c.name), "failures", failures, "err", err)
			}
			wait := backoff/2 + rand.N(backoff/2+1)
			backoff = min(2*backoff, m.cfg.RetryMax)
			timer.Reset(wait)
			select {
			case <-ctx.Done():
				timer.Stop()
				return
			case <-mp.wake:
				timer.Stop()
				backoff = m.cfg.RetryMin
			case <-timer.C:
			}
			continue
		}
		mp.done(c)
		backoff, failures = m.cfg.RetryMin, 0
		switch {
		case !ok:
		case err != nil:
			m.stats.callErrors.Add(1)
			m.log.Warn("mapper refused a call", "protocol", mp.protocol(), "call", c.method, "object", key(c.ns, c.name), "err", err)
		default:
			m.stats.calls.Add(1)
			m.log.Debug("mapper call", "protocol", mp.protocol(), "call", c.method, "object", key(c.ns, c.name))
		}
	}
}

// limiter is a token bucket: rate tokens a second, at most burst.
type limiter struct {
	mu     sync.Mutex
	rate   float64
	burst  float64
	tokens float64
	last   time.Time
	now    func() time.Time
}

func newLimiter(rate float64, burst int, now func() time.Time) *limiter {
	return &limiter{rate: rate, burst: float64(burst), tokens: float64(burst), last: now(), now: now}
}

// allow takes a token if there is one.
func (l *limiter) allow() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	t := l.now()
	l.tokens = min(l.burst, l.tokens+t.Sub(l.last).Seconds()*l.rate)
	l.last = t
	if l.tokens < 1 {
		return false
	}
	l.tokens--
	return true
}
