// Package s3test starts a real S3-compatible server (SeaweedFS, `weed
// server -s3`) for tests.
//
// The weed binary is looked up on PATH and in $(go env GOPATH)/bin. When it
// is missing a test is skipped, except under CI=true where it fails: CI must
// exercise the real server (scripts/install-deps.sh builds it).
package s3test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// Server is one SeaweedFS process (master, volume, filer and S3 gateway)
// with private storage on loopback ports.
type Server struct {
	// Endpoint is host:port of the S3 API (plain http).
	Endpoint string
	// AccessKey and SecretKey are the one identity's credentials.
	AccessKey, SecretKey string
	// Client is an S3 client with those credentials, for uploads.
	Client *minio.Client
}

// weedBinary finds the weed executable.
func weedBinary() (string, error) {
	if p, err := exec.LookPath("weed"); err == nil {
		return p, nil
	}
	gopath := os.Getenv("GOPATH")
	if gopath == "" {
		if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
			gopath = strings.TrimSpace(string(out))
		}
	}
	for _, dir := range filepath.SplitList(gopath) {
		p := filepath.Join(dir, "bin", "weed")
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			return p, nil
		}
	}
	return "", fmt.Errorf("weed not found")
}

// freePorts returns n distinct loopback ports free at the time of the call.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	ports := make([]int, n)
	for i := range ports {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		ports[i] = ln.Addr().(*net.TCPAddr).Port
	}
	return ports
}

// Start runs SeaweedFS on free loopback ports with storage in a temporary
// directory and one identity allowed everything, creates bucket, waits
// until the S3 API answers and stops the server in t.Cleanup.
func Start(t testing.TB, bucket string) *Server {
	t.Helper()
	bin, err := weedBinary()
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("SeaweedFS (weed) is missing: run scripts/install-deps.sh")
		}
		t.Skip("SeaweedFS (weed) is missing: run scripts/install-deps.sh")
	}
	dir := t.TempDir()
	s := &Server{AccessKey: "tileserver-test", SecretKey: "tileserver-test-secret"}
	cfg := map[string]any{"identities": []any{map[string]any{
		"name":        "test",
		"credentials": []any{map[string]string{"accessKey": s.AccessKey, "secretKey": s.SecretKey}},
		"actions":     []string{"Admin", "Read", "List", "Tagging", "Write"},
	}}}
	cfgPath := filepath.Join(dir, "s3.json")
	b, _ := json.Marshal(cfg)
	if err := os.WriteFile(cfgPath, b, 0o600); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	if err := os.Mkdir(data, 0o755); err != nil {
		t.Fatal(err)
	}
	p := freePorts(t, 8)
	s.Endpoint = fmt.Sprintf("127.0.0.1:%d", p[6])
	args := []string{"server", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-dir=" + data,
		fmt.Sprintf("-master.port=%d", p[0]), fmt.Sprintf("-master.port.grpc=%d", p[1]),
		fmt.Sprintf("-volume.port=%d", p[2]), fmt.Sprintf("-volume.port.grpc=%d", p[3]),
		"-filer", fmt.Sprintf("-filer.port=%d", p[4]), fmt.Sprintf("-filer.port.grpc=%d", p[5]),
		"-filer.localSocket=" + filepath.Join(dir, "filer.sock"),
		"-s3", fmt.Sprintf("-s3.port=%d", p[6]), fmt.Sprintf("-s3.port.grpc=%d", p[7]),
		"-s3.localSocket=" + filepath.Join(dir, "s3.sock"),
		"-s3.port.iceberg=0", "-s3.port.lance=0", "-s3.config=" + cfgPath,
		"-master.telemetry=false", "-master.volumeSizeLimitMB=64", "-volume.max=4",
	}
	logPath := filepath.Join(dir, "weed.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		logf.Close()
	})
	s.Client, err = minio.New(s.Endpoint, &minio.Options{Creds: credentials.NewStaticV4(s.AccessKey, s.SecretKey, "")})
	if err != nil {
		t.Fatal(err)
	}
	// The S3 gateway answers once master, volume and filer are up; a
	// loaded machine can take a while.
	deadline := time.Now().Add(3 * time.Minute)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err = s.Client.MakeBucket(ctx, bucket, minio.MakeBucketOptions{})
		if err != nil && minio.ToErrorResponse(err).Code == "BucketAlreadyOwnedByYou" {
			err = nil
		}
		if err == nil {
			// A bucket is usable once an object can be written to it.
			_, err = s.Client.PutObject(ctx, bucket, ".probe", strings.NewReader("x"), 1, minio.PutObjectOptions{})
			if err == nil {
				err = s.Client.RemoveObject(ctx, bucket, ".probe", minio.RemoveObjectOptions{})
			}
		}
		cancel()
		if err == nil {
			return s
		}
		select {
		case <-exited:
			log, _ := os.ReadFile(logPath)
			t.Fatalf("weed exited: %s", tail(log))
		default:
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(logPath)
			t.Fatalf("SeaweedFS did not answer: %v\n%s", err, tail(log))
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// Upload puts the file at path as key.
func (s *Server) Upload(t testing.TB, bucket, key, path string) minio.UploadInfo {
	t.Helper()
	info, err := s.Client.FPutObject(context.Background(), bucket, key, path, minio.PutObjectOptions{})
	if err != nil {
		t.Fatalf("upload %s: %v", key, err)
	}
	return info
}

// Env sets the AWS credential variables to the server's identity for the
// test.
func (s *Server) Env(t testing.TB) {
	t.Setenv("AWS_ACCESS_KEY_ID", s.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", s.SecretKey)
}

func tail(b []byte) string {
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}
