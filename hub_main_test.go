package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"edgenode/bus"
	"edgenode/hub/hubtest"
)

func TestHubFlags(t *testing.T) {
	hash := strings.Repeat("ab", 32)
	tests := []struct {
		name     string
		args     []string
		wantCode int
		want     []string // lines expected in the printed config
	}{
		{"no cloud", nil, 0, []string{"hub: {}"}},
		{"cloud", []string{"--cloud", "10.0.0.5:10000"}, 0, []string{
			"server: 10.0.0.5:10000", "certServer: https://10.0.0.5:10002",
			"projectID: e632aba927ea4ac2b575ec1603d56f10", "heartbeat: 15s"}},
		{"cert server and project", []string{"--cloud", "h:10000", "--cert-server", "https://certs:9443", "--project-id", "p1", "--token", hash + ".a.b.c"}, 0, []string{
			"certServer: https://certs:9443", "projectID: p1", "token: (redacted)"}},
		{"bad cloud", []string{"--cloud", "nohostport"}, 1, []string{"hub.server"}},
		{"bad token", []string{"--cloud", "h:1", "--token", "abc"}, 1, []string{"hub.token"}},
		{"bad cert server", []string{"--cloud", "h:1", "--cert-server", "http://x"}, 1, []string{"hub.certServer"}},
		{"token file", []string{"--cloud", "h:1", "--token-file", "GOOD"}, 0, []string{"token: (redacted)"}},
		{"bad token file", []string{"--cloud", "h:1", "--token-file", "BAD"}, 1, []string{"hub.token"}},
		{"missing token file", []string{"--cloud", "h:1", "--token-file", "/nonexistent"}, 2, []string{"token file"}},
		{"token env", []string{"--cloud", "h:1", "ENV=abc"}, 1, []string{"hub.token"}},
		{"flag over env", []string{"--cloud", "h:1", "--token-file", "GOOD", "ENV=abc"}, 0, []string{"token: (redacted)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			good, bad := filepath.Join(dir, "good"), filepath.Join(dir, "bad")
			os.WriteFile(good, []byte(hash+".a.b.c\n"), 0o600)
			os.WriteFile(bad, []byte("abc\n"), 0o600)
			var flags []string
			for _, a := range tt.args {
				switch {
				case a == "GOOD":
					a = good
				case a == "BAD":
					a = bad
				case strings.HasPrefix(a, "ENV="):
					t.Setenv(EnvToken, a[4:])
					continue
				}
				flags = append(flags, a)
			}
			conf := filepath.Join(dir, "config.yaml")
			if err := os.WriteFile(conf, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			args := append([]string{"config", "--config", conf, "--data-dir", dir, "--node-name", "n1"}, flags...)
			var out, errOut bytes.Buffer
			code := realMain(args, &out, &errOut)
			if code != tt.wantCode {
				t.Fatalf("realMain(%q) = %d, want %d; stderr: %s", args, code, tt.wantCode, errOut.String())
			}
			text := out.String() + errOut.String()
			for _, w := range tt.want {
				if !strings.Contains(text, w) {
					t.Errorf("output lacks %q:\n%s", w, text)
				}
			}
		})
	}
}

func TestHubConfigFile(t *testing.T) {
	var cfg Config
	err := decodeConfig([]byte("hub:\n  server: h:10000\n  heartbeat: 5s\n  messageQPS: 10\n  insecureSkipVerify: true\n"), &cfg)
	if err != nil {
		t.Fatalf("decodeConfig() = %v", err)
	}
	if cfg.Hub.Server != "h:10000" || cfg.Hub.Heartbeat != 5*time.Second || cfg.Hub.MessageQPS != 10 || !cfg.Hub.InsecureSkipVerify {
		t.Errorf("hub section = %+v", cfg.Hub)
	}
	if err := decodeConfig([]byte("hub:\n  sever: h:1\n"), &cfg); err == nil {
		t.Error("decodeConfig(unknown hub key) = nil error")
	}
	if err := decodeConfig([]byte("hub:\n  heartbeat: 15\n"), &cfg); err == nil {
		t.Error("decodeConfig(heartbeat without unit) = nil error")
	}
}

// TestRunJoinsCloud runs the node as `edgenode run --cloud --token` does,
// against an in-process cloud: it bootstraps a certificate and connects.
func TestRunJoinsCloud(t *testing.T) {
	srv := hubtest.NewServer(hubtest.Config{})
	defer srv.Close()
	early, stop := runInProcess(t, "n1", func(c *Config) {
		c.Hub.Server, c.Hub.Token, c.Hub.CertServer = srv.Addr, srv.Token("n1"), srv.CertURL
	})
	wctx, wcancel := context.WithTimeout(early, 2*time.Minute) // ends early if run does
	defer wcancel()
	ka, err := srv.WaitFor(wctx, func(m bus.Message) bool { return m.Route.Operation == bus.OpKeepalive })
	if err != nil {
		if early.Err() != nil {
			t.Fatalf("run() ended before the node joined: %v", stop())
		}
		t.Fatalf("no keepalive from the node: %v", err)
	}
	if ka.Route.Source != bus.ModuleHub {
		t.Errorf("keepalive source = %q", ka.Route.Source)
	}
	if node, _ := srv.Node(); node != "n1" {
		t.Errorf("cloud sees node %q, want n1", node)
	}
	if srv.Issued() != 1 {
		t.Errorf("certificates issued = %d, want 1", srv.Issued())
	}
	if err := stop(); err != nil {
		t.Errorf("run() = %v, want nil", err)
	}
}
