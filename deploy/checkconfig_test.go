package deploy

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// fileSetting matches a "something_file: /path" line of a configuration.
var fileSetting = regexp.MustCompile(`(?m)^(\s*(?:-\s+)?(\w+_file):\s*)(\S+)\s*$`)

// materialize gives every *_file the configuration names a stand-in under
// root (a password, or a fresh self-signed certificate and key), rewrites
// the paths to point there, and returns the new configuration.
func materialize(t *testing.T, root, config string) string {
	t.Helper()
	cert, key := selfSigned(t)
	return fileSetting.ReplaceAllStringFunc(config, func(line string) string {
		m := fileSetting.FindStringSubmatch(line)
		prefix, field, path := m[1], m[2], m[3]
		local := filepath.Join(root, filepath.FromSlash(path))
		var content []byte
		switch {
		case field == "key_file":
			content = key
		case strings.Contains(field, "cert") || strings.Contains(field, "ca"):
			content = cert
		default:
			content = []byte("stand-in-password\n")
		}
		writeFile(t, local, content)
		return prefix + local
	})
}

func writeFile(t *testing.T, path string, content []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, content, 0o600); err != nil {
		t.Fatal(err)
	}
}

func selfSigned(t *testing.T) (cert, key []byte) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "switchyard.test"},
		DNSNames:              []string{"switchyard.test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

// checkConfig runs `switchyard check-config` with env as the whole
// environment and args after the command.
func checkConfig(t *testing.T, env []string, args ...string) (string, error) {
	t.Helper()
	bin, _ := switchyardBinary(t)
	cmd := exec.Command(bin, append([]string{"check-config"}, args...)...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestConfigMapPassesCheckConfig runs the proxy's own validation on the
// configuration every environment renders into its ConfigMap.
func TestConfigMapPassesCheckConfig(t *testing.T) {
	forEachEnv(t, func(t *testing.T, env Environment, m *manifests) {
		text, _ := configOf(t, m)
		root := t.TempDir()
		path := filepath.Join(root, "switchyard.yaml")
		writeFile(t, path, []byte(materialize(t, root, text)))
		out, err := checkConfig(t, nil, "-config", path)
		if err != nil {
			t.Fatalf("switchyard check-config rejects the %s ConfigMap: %v\n%s\n--- configuration:\n%s", env.Name, err, out, text)
		}
		if !strings.HasPrefix(out, "configuration OK") {
			t.Errorf("check-config printed %q", out)
		}
	})
}

// TestCheckConfigRejects proves the check can fail: a configuration the
// chart could render by mistake is refused.
func TestCheckConfigRejects(t *testing.T) {
	root := t.TempDir()
	path := filepath.Join(root, "bad.yaml")
	writeFile(t, path, []byte("admin_listen: 0.0.0.0:9190\ngroups:\n  - name: a\n    listen: 0.0.0.0:6379\n    pool_sise: 2\n    upstream: 127.0.0.1:1\n"))
	if out, err := checkConfig(t, nil, "-config", path); err == nil {
		t.Fatalf("check-config accepted a misspelt field:\n%s", out)
	}
}
