package mqtt

import (
	"errors"
	"reflect"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
)

// errLoop: the broker's event loop is not laid out as slowLoop expects
// (a mochi-mqtt other than v2.7.9).
var errLoop = errors.New("mqtt: mochi-mqtt's event loop tickers not found")

// loopTickers are the fields of mochi-mqtt v2.7.9's server loop (server.go,
// type loop) that tick every second whatever the broker does: expired
// sessions, inflight messages, retained messages, delayed wills.
var loopTickers = []string{"clientExpiry", "inflightExpiry", "retainedExpiry", "willDelaySend"}

// slowLoop sets the periods of the broker's event loop tickers: the $SYS
// topics every sys (stopped when sys is 0) and the housekeeping tickers
// every housekeeping. mochi-mqtt v2.7.9 fixes the latter at one second
// and has no option for them; four wake-ups a second are a measurable
// share of an idle Pi Zero's CPU, so they are reset here, through
// reflection on the unexported field. It must run before Serve.
func slowLoop(srv *mochi.Server, sys, housekeeping time.Duration) error {
	lp := reflect.ValueOf(srv).Elem().FieldByName("loop")
	if !lp.IsValid() || lp.Kind() != reflect.Pointer || lp.IsNil() {
		return errLoop
	}
	loop := lp.Elem()
	ticker := func(name string) *time.Ticker {
		f := loop.FieldByName(name)
		if !f.IsValid() || f.Type() != reflect.TypeFor[*time.Ticker]() || f.IsNil() {
			return nil
		}
		return (*time.Ticker)(f.UnsafePointer())
	}
	var ts []*time.Ticker
	for _, n := range append([]string{"sysTopics"}, loopTickers...) {
		t := ticker(n)
		if t == nil {
			return errLoop
		}
		ts = append(ts, t)
	}
	if sys > 0 {
		ts[0].Reset(sys)
	} else {
		ts[0].Stop()
	}
	for _, t := range ts[1:] {
		t.Reset(housekeeping)
	}
	return nil
}
