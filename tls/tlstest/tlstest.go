// Package tlstest makes throwaway certificate authorities, certificates and
// key files for tests of TLS listeners and dials.
//
// Everything here is for tests only: keys are generated on the fly, kept in
// memory and in t.TempDir() files, and certificates are valid for an hour.
// It must never be imported by non-test code.
package tlstest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// validity is how long issued certificates last: long enough for any test,
// short enough that a leaked file is worthless.
const validity = time.Hour

// CA is a self-signed certificate authority.
type CA struct {
	Cert    *x509.Certificate
	Key     crypto.Signer
	CertPEM []byte // Cert, PEM-encoded: write it as a CA bundle
}

// NewCA makes a CA whose subject common name is name.
func NewCA(t testing.TB, name string) *CA {
	t.Helper()
	key := newKey(t)
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          NewSerial(t),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             now.Add(-time.Minute), // tolerate clock skew between processes
		NotAfter:              now.Add(validity),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatalf("tlstest: create CA %q: %v", name, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("tlstest: parse CA %q: %v", name, err)
	}
	return &CA{Cert: cert, Key: key, CertPEM: encodeCert(der)}
}

// Issue signs a new ECDSA P-256 leaf certificate, valid from a minute ago
// for an hour. isClient makes it a client certificate (ExtKeyUsageClientAuth),
// otherwise it is a server certificate (ExtKeyUsageServerAuth).
func (ca *CA) Issue(t testing.TB, commonName string, dnsNames []string, ips []net.IP, isClient bool) (certPEM, keyPEM []byte) {
	t.Helper()
	now := time.Now()
	usage := x509.ExtKeyUsageServerAuth
	if isClient {
		usage = x509.ExtKeyUsageClientAuth
	}
	return ca.IssueCert(t, &x509.Certificate{
		Subject:     pkix.Name{CommonName: commonName},
		DNSNames:    dnsNames,
		IPAddresses: ips,
		NotBefore:   now.Add(-time.Minute),
		NotAfter:    now.Add(validity),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{usage},
	})
}

// IssueCert signs tmpl with a new ECDSA P-256 key, for certificates Issue
// cannot describe (an expired one, say). A nil SerialNumber gets a random one.
func (ca *CA) IssueCert(t testing.TB, tmpl *x509.Certificate) (certPEM, keyPEM []byte) {
	t.Helper()
	if tmpl.SerialNumber == nil {
		tmpl.SerialNumber = NewSerial(t)
	}
	key := newKey(t)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		t.Fatalf("tlstest: issue %q: %v", tmpl.Subject.CommonName, err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatalf("tlstest: marshal key: %v", err)
	}
	return encodeCert(der), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8})
}

// NewSerial returns a random 128-bit serial number, so that certificates
// issued in one test are told apart by serial.
func NewSerial(t testing.TB) *big.Int {
	t.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		t.Fatalf("tlstest: serial: %v", err)
	}
	return n
}

// SerialOf parses certPEM and returns its serial number.
func SerialOf(t testing.TB, certPEM []byte) *big.Int {
	t.Helper()
	b, _ := pem.Decode(certPEM)
	if b == nil {
		t.Fatalf("tlstest: SerialOf: no PEM block")
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatalf("tlstest: SerialOf: %v", err)
	}
	return c.SerialNumber
}

// WriteFiles writes each name (relative to dir) with mode 0600, creating dir
// if needed. Each file is written to a temporary name and renamed, so a
// concurrent reader sees the old or the new content, never a torn write;
// different files are still replaced one after the other.
func WriteFiles(t testing.TB, dir string, files map[string][]byte) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatalf("tlstest: %v", err)
	}
	for name, data := range files {
		p := filepath.Join(dir, name)
		tmp := p + ".tmp"
		if err := os.WriteFile(tmp, data, 0o600); err != nil {
			t.Fatalf("tlstest: %v", err)
		}
		if err := os.Rename(tmp, p); err != nil {
			t.Fatalf("tlstest: %v", err)
		}
	}
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("tlstest: generate key: %v", err)
	}
	return key
}

func encodeCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}
