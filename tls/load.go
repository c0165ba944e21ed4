package tls

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	stdtls "crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
)

// file is one watched file: the Config field that named it (for errors
// that say what to fix) and its path.
type file struct {
	field string // e.g. "CertFile"
	path  string
}

// readFile reads f, following symlinks. Errors name the field and the
// file; the operating system's message follows without the path repeated.
func readFile(f file) ([]byte, error) {
	b, err := os.ReadFile(f.path)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			return nil, fmt.Errorf("tls: %s %q: %w", f.field, f.path, pe.Err)
		}
		return nil, fmt.Errorf("tls: %s %q: %w", f.field, f.path, err)
	}
	if len(b) == 0 {
		return nil, fmt.Errorf("tls: %s %q: file is empty", f.field, f.path)
	}
	return b, nil
}

// parseKeyPair checks a certificate and key file pair and returns the
// certificate with Leaf set. It checks each file on its own first so that
// the error points at the file that is wrong rather than at the pair.
// Errors never include PEM content: the key file's bytes are secret.
func parseKeyPair(cf file, certPEM []byte, kf file, keyPEM []byte) (*stdtls.Certificate, error) {
	leaf, err := parseLeaf(cf, certPEM)
	if err != nil {
		return nil, err
	}
	key, err := parsePrivateKey(kf, keyPEM)
	if err != nil {
		return nil, err
	}
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(leaf.PublicKey) {
		return nil, fmt.Errorf("tls: %s %q: private key does not match the certificate in %s %q", kf.field, kf.path, cf.field, cf.path)
	}
	// X509KeyPair repeats the checks above and also assembles the chain.
	c, err := stdtls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("tls: %s %q and %s %q: %w", cf.field, cf.path, kf.field, kf.path, err)
	}
	if c.Leaf == nil { // set by X509KeyPair since Go 1.23 unless x509keypairleaf=0
		c.Leaf = leaf
	}
	return &c, nil
}

// parseLeaf returns the first certificate of a certificate file, which
// must come before any intermediates.
func parseLeaf(f file, b []byte) (*x509.Certificate, error) {
	for rest := b; ; {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			return nil, fmt.Errorf("tls: %s %q: no PEM CERTIFICATE block", f.field, f.path)
		}
		if strings.HasSuffix(blk.Type, "PRIVATE KEY") {
			return nil, fmt.Errorf("tls: %s %q: holds a private key; is it the key file?", f.field, f.path)
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("tls: %s %q: %w", f.field, f.path, err)
		}
		return c, nil
	}
}

// parsePrivateKey accepts the encodings crypto/tls does: PKCS #8
// ("PRIVATE KEY"), PKCS #1 ("RSA PRIVATE KEY") and SEC 1 ("EC PRIVATE KEY").
func parsePrivateKey(f file, b []byte) (crypto.Signer, error) {
	for rest := b; ; {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			return nil, fmt.Errorf("tls: %s %q: no PEM PRIVATE KEY block", f.field, f.path)
		}
		if !strings.HasSuffix(blk.Type, "PRIVATE KEY") {
			continue
		}
		// The x509 parse errors describe the structure, not the bytes.
		if k, err := x509.ParsePKCS8PrivateKey(blk.Bytes); err == nil {
			switch k := k.(type) {
			case *rsa.PrivateKey, *ecdsa.PrivateKey, ed25519.PrivateKey:
				return k.(crypto.Signer), nil
			}
			return nil, fmt.Errorf("tls: %s %q: unsupported private key type %T", f.field, f.path, k)
		}
		if k, err := x509.ParsePKCS1PrivateKey(blk.Bytes); err == nil {
			return k, nil
		}
		if k, err := x509.ParseECPrivateKey(blk.Bytes); err == nil {
			return k, nil
		}
		return nil, fmt.Errorf("tls: %s %q: %s block is not a valid PKCS #8, PKCS #1 or SEC 1 private key", f.field, f.path, blk.Type)
	}
}

// parseCAPool parses a bundle of CA certificates. Unlike
// x509.CertPool.AppendCertsFromPEM it fails on a certificate it cannot
// parse instead of skipping it, so a damaged bundle is an error rather
// than a pool missing a CA. Text between blocks (comments in bundles) is
// ignored.
func parseCAPool(f file, b []byte) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	n := 0
	for rest := b; ; {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("tls: %s %q: PEM block %d is %q, want CERTIFICATE", f.field, f.path, n+1, blk.Type)
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("tls: %s %q: certificate %d: %w", f.field, f.path, n+1, err)
		}
		pool.AddCert(c)
		n++
	}
	if n == 0 {
		return nil, fmt.Errorf("tls: %s %q: no PEM CERTIFICATE block", f.field, f.path)
	}
	return pool, nil
}
