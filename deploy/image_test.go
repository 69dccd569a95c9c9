package deploy

import (
	"archive/tar"
	"bytes"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// TestKoImage builds the image with ko (pinned in tools/ko, .ko.yaml), no
// Docker daemon, to a tarball, and checks its configuration: user 65532,
// the entrypoint, the labels, the binary's version.
//
// The release uses .ko.yaml's distroless base. This workplace reaches no
// container registry, so the test gives ko a stand-in of the same shape,
// built here and served by an in-process registry on loopback: Debian's CA
// certificates, the nonroot user 65532, no shell. What is checked is ko's
// build and the image's configuration, not the base.
func TestKoImage(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("builds the image (ko): not with -short")
	}
	reg := httptest.NewServer(registry.New(registry.Logger(nilLogger())))
	defer reg.Close()
	host := strings.TrimPrefix(reg.URL, "http://")
	base := host + "/distroless-standin/static:nonroot"
	pushStandIn(t, base)

	tmp := t.TempDir()
	out := filepath.Join(tmp, "image.tar")
	cmd := exec.Command("go", "tool", "-modfile=tools/ko/go.mod", "ko", "build", "--bare", "--push=false", "--tarball="+out,
		"--platform=linux/amd64", "--tags=v0.0.0-test", "--sbom=none",
		"--image-label=org.opencontainers.image.source=https://github.com/cfaccess/reconciler",
		"--image-label=org.opencontainers.image.version=v0.0.0-test", "./cmd/reconciler")
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(), "KO_DEFAULTBASEIMAGE="+base, "KO_DOCKER_REPO=ghcr.io/cfaccess/reconciler",
		"CFACCESS_VERSION=v0.0.0-test")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("ko build: %v\n%s", err, stderr.String())
	}
	tag, err := name.NewTag("ghcr.io/cfaccess/reconciler:v0.0.0-test")
	if err != nil {
		t.Fatal(err)
	}
	img, err := tarball.ImageFromPath(out, &tag)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	c := cfg.Config
	if c.User != "65532" && c.User != "65532:65532" {
		t.Errorf("user %q, want 65532", c.User)
	}
	if !slices.Equal(c.Entrypoint, []string{"/ko-app/reconciler"}) {
		t.Errorf("entrypoint %v", c.Entrypoint)
	}
	for k, v := range map[string]string{"org.opencontainers.image.source": "https://github.com/cfaccess/reconciler", "org.opencontainers.image.version": "v0.0.0-test"} {
		if c.Labels[k] != v {
			t.Errorf("label %s = %q, want %q", k, c.Labels[k], v)
		}
	}
	if cfg.OS != "linux" || cfg.Architecture != "amd64" {
		t.Errorf("platform %s/%s", cfg.OS, cfg.Architecture)
	}
	size, _ := os.Stat(out)
	t.Logf("image tarball: %d bytes", size.Size())
}

// pushStandIn pushes a base image shaped like distroless static nonroot:
// CA certificates, /etc/passwd with nonroot (65532), user 65532, no shell.
func pushStandIn(t *testing.T, ref string) {
	t.Helper()
	certs, err := os.ReadFile("/etc/ssl/certs/ca-certificates.crt")
	if err != nil {
		t.Skipf("no CA certificates to build the stand-in base: %v", err)
	}
	var layer bytes.Buffer
	tw := tar.NewWriter(&layer)
	for _, f := range []struct {
		name string
		data []byte
	}{
		{"etc/ssl/certs/ca-certificates.crt", certs},
		{"etc/passwd", []byte("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n")},
		{"etc/group", []byte("root:x:0:\nnonroot:x:65532:\n")},
	} {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: 0o644, Size: int64(len(f.data)), ModTime: time.Unix(0, 0)}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(f.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	data := layer.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, l)
	if err != nil {
		t.Fatal(err)
	}
	img, err = mutate.ConfigFile(img, &v1.ConfigFile{OS: "linux", Architecture: "amd64",
		Config: v1.Config{User: "65532", Env: []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"}}})
	if err != nil {
		t.Fatal(err)
	}
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img); err != nil {
		t.Fatal(err)
	}
}

func nilLogger() *log.Logger { return log.New(io.Discard, "", 0) }
