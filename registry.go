package main

import (
	"slices"
	"sync"
	"time"
)

// State is a module's liveness as the health registry knows it.
type State string

// Module states.
const (
	StateStarting State = "starting" // registered, Run not started yet
	StateRunning  State = "running"  // Run is serving
	StateStopped  State = "stopped"  // Run returned after ctx ended
	StateFailed   State = "failed"   // Run returned an error, or a probe fails
)

// ModuleHealth is one module's entry.
type ModuleHealth struct {
	Name   string    `json:"name"`
	State  State     `json:"state"`
	Detail string    `json:"detail,omitempty"`
	Since  time.Time `json:"since"`
}

// Registry holds the liveness of every module. Modules (or main, around
// each module's Run) report with Set; Probe adds a check that is evaluated
// whenever health is read, e.g. "queue not full". The zero value is not
// usable; call NewRegistry. It is safe for concurrent use.
type Registry struct {
	mu     sync.Mutex
	mods   map[string]*ModuleHealth
	order  []string
	probes map[string]func() error
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{mods: map[string]*ModuleHealth{}, probes: map[string]func() error{}}
}

// Add registers a module in state starting. Adding a name twice keeps the
// first entry.
func (r *Registry) Add(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.mods[name]; ok {
		return
	}
	r.mods[name] = &ModuleHealth{Name: name, State: StateStarting, Since: time.Now()}
	r.order = append(r.order, name)
}

// Set records a module's state; detail says why (e.g. the error). An
// unknown name is added.
func (r *Registry) Set(name string, s State, detail string) {
	r.Add(name)
	r.mu.Lock()
	defer r.mu.Unlock()
	m := r.mods[name]
	if m.State != s || m.Detail != detail {
		m.State, m.Detail, m.Since = s, detail, time.Now()
	}
}

// Probe adds a liveness check for a module: while probe returns an error,
// a running module reads as failed with that error as detail.
func (r *Registry) Probe(name string, probe func() error) {
	r.Add(name)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.probes[name] = probe
}

// Modules returns every module's health, in the order they were added,
// with probes applied.
func (r *Registry) Modules() []ModuleHealth { return r.appendModules(nil) }

// stackModules is how many modules appendModules's callers hold on their
// stack: the node has about a dozen. The watchdog and the node status ask
// every few seconds, and a node that is healthy allocates nothing for it.
const stackModules = 32

// appendModules appends every module's health to out, as Modules returns
// it.
func (r *Registry) appendModules(out []ModuleHealth) []ModuleHealth {
	var pb [stackModules]func() error
	probes := pb[:0]
	r.mu.Lock()
	first := len(out)
	for _, n := range r.order {
		out = append(out, *r.mods[n])
		probes = append(probes, r.probes[n])
	}
	r.mu.Unlock()
	// Probes run outside the lock: they may call into other modules.
	for i, p := range probes {
		m := &out[first+i]
		if p == nil || m.State != StateRunning {
			continue
		}
		if err := p(); err != nil {
			m.State, m.Detail = StateFailed, err.Error()
		}
	}
	return out
}

// Failed reports whether a module failed, as opposed to stopping with
// the node: the watchdog then leaves the board's timer running.
func (r *Registry) Failed() bool {
	var buf [stackModules]ModuleHealth
	return slices.ContainsFunc(r.appendModules(buf[:0]), func(m ModuleHealth) bool { return m.State == StateFailed })
}

// StartTimeout is how long a module may stay starting before it counts as
// unhealthy.
const StartTimeout = 5 * time.Minute

// Unhealthy returns the names of modules that are not running. Starting
// counts as healthy (the node is coming up) for StartTimeout. Stopped
// modules are unhealthy too: while the node runs, every module should.
func (r *Registry) Unhealthy() []string {
	var bad []string
	var buf [stackModules]ModuleHealth
	for _, m := range r.appendModules(buf[:0]) {
		switch {
		case m.State == StateRunning:
		case m.State == StateStarting && time.Since(m.Since) < StartTimeout:
		default:
			bad = append(bad, m.Name)
		}
	}
	slices.Sort(bad)
	return bad
}
