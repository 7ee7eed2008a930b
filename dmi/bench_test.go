package dmi

import (
	"fmt"
	"testing"
)

// BenchmarkRegistration measures the MapperRegister answer for a mapper
// with 100 devices of one model, built from memory as the server does;
// the mapper-framework waits 1 s for it.
func BenchmarkRegistration(b *testing.B) {
	m := &DMI{devices: map[string]device{}, models: map[string]model{}}
	md, err := parseModel("default", "thermo-model", []byte(modelJSON))
	if err != nil {
		b.Fatal(err)
	}
	m.models[key("default", "thermo-model")] = md
	for i := range 100 {
		name := fmt.Sprintf("thermo-%d", i)
		d, err := parseDevice("default", name, []byte(deviceWith("20")))
		if err != nil {
			b.Fatal(err)
		}
		m.devices[key("default", name)] = d
	}
	b.ReportAllocs()
	for b.Loop() {
		models, devices := m.registration("modbus")
		if len(models) != 1 || len(devices) != 100 {
			b.Fatalf("registration() = %d models, %d devices, want 1 and 100", len(models), len(devices))
		}
	}
}
