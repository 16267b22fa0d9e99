// Package orthanctest starts a real Orthanc server with its DICOMweb plugin
// for tests.
//
// Orthanc is looked up as "Orthanc" on PATH and the plugin in Debian's
// locations. When either is missing a test is skipped, except under CI=true
// where it fails: CI must exercise the real server
// (scripts/orthanc-test-env.sh installs both).
package orthanctest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// pluginGlobs are where Debian's orthanc-dicomweb package puts the plugin.
var pluginGlobs = []string{
	"/usr/share/orthanc/plugins/libOrthancDicomWeb.so",
	"/usr/lib/orthanc/libOrthancDicomWeb.so*",
}

// Server is one Orthanc child process with private storage.
type Server struct {
	// URL is the HTTP root, "http://127.0.0.1:port".
	URL string
	// LogPath is Orthanc's log file.
	LogPath string
	// user and password authenticate the test's own requests when the
	// server requires them.
	user, password string
}

// Options configure the server.
type Options struct {
	// User and Password, when set, make Orthanc require HTTP Basic
	// authentication with them.
	User, Password string
}

// DICOMweb returns the DICOMweb service root.
func (s *Server) DICOMweb() string { return s.URL + "/dicom-web" }

// Start runs Orthanc with the DICOMweb plugin on a free loopback port,
// storage in a temporary directory, waits until it answers and stops it in
// t.Cleanup.
func Start(t testing.TB) *Server {
	t.Helper()
	return StartWith(t, Options{})
}

// StartWith is Start with options.
func StartWith(t testing.TB, opt Options) *Server {
	t.Helper()
	missing := func(what string) {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is missing (run scripts/orthanc-test-env.sh)", what)
		}
		t.Skipf("%s is missing (run scripts/orthanc-test-env.sh)", what)
	}
	bin, err := exec.LookPath("Orthanc")
	if err != nil {
		missing("Orthanc")
	}
	var plugin string
	for _, pat := range pluginGlobs {
		if m, _ := filepath.Glob(pat); len(m) > 0 {
			plugin = m[0]
			break
		}
	}
	if plugin == "" {
		missing("the Orthanc DICOMweb plugin")
	}
	dir := t.TempDir()
	httpPort, dicomPort := FreePort(t), FreePort(t)
	cfg := map[string]any{
		"Name":                  "tileserver-test",
		"StorageDirectory":      filepath.Join(dir, "db"),
		"IndexDirectory":        filepath.Join(dir, "db"),
		"HttpPort":              httpPort,
		"DicomPort":             dicomPort,
		"DicomServerEnabled":    false,
		"RemoteAccessAllowed":   false,
		"AuthenticationEnabled": opt.User != "",
		"SaveJobs":              false,
		"HttpThreadsCount":      4,
		"Plugins":               []string{plugin},
		"DicomWeb":              map[string]any{"Enable": true, "Root": "/dicom-web/"},
	}
	if opt.User != "" {
		cfg["RegisteredUsers"] = map[string]string{opt.User: opt.Password}
	}
	b, _ := json.Marshal(cfg)
	cfgPath := filepath.Join(dir, "orthanc.json")
	if err := os.WriteFile(cfgPath, b, 0o644); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(dir, "orthanc.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, cfgPath)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		logf.Close()
	})
	s := &Server{URL: fmt.Sprintf("http://127.0.0.1:%d", httpPort), LogPath: logf.Name(), user: opt.User, password: opt.Password}
	// A bounded number of polls: Orthanc creates its database first.
	for i := 0; ; i++ {
		resp, err := s.do(http.MethodGet, "/system", "", nil)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if i == 300 {
			log, _ := os.ReadFile(logf.Name())
			t.Fatalf("Orthanc did not start: %v\n%s", err, log)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return s
}

// Upload stores a DICOM file in the server (POST /instances).
func (s *Server) Upload(t testing.TB, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := s.do(http.MethodPost, "/instances", "application/dicom", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("upload %s: status %d", path, resp.StatusCode)
	}
}

// do makes a request to the server with the test's credentials.
func (s *Server) do(method, path, contentType string, body io.Reader) (*http.Response, error) {
	req, err := http.NewRequest(method, s.URL+path, body)
	if err != nil {
		return nil, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if s.user != "" {
		req.SetBasicAuth(s.user, s.password)
	}
	return http.DefaultClient.Do(req)
}

// FreePort returns a TCP port on the loopback interface that was free a
// moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
