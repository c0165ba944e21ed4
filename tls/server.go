package tls

import (
	"context"
	stdtls "crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"
)

// ServerConfig is TLS for one client-facing listener.
type ServerConfig struct {
	// CertFile is the PEM certificate, followed by any intermediates.
	// Required; no default.
	CertFile string
	// KeyFile is the PEM private key of CertFile (PKCS #8, PKCS #1 or
	// SEC 1). Required; no default.
	KeyFile string
	// ClientCAFile is a PEM bundle of the CAs that client certificates
	// must chain to. Default "": no client certificates. It is required by,
	// and only allowed with, ClientAuth optional or require, so that a CA
	// file is never configured without being used.
	ClientCAFile string
	// ClientAuth is the client-certificate policy. Default ClientAuthNone.
	ClientAuth ClientAuth
	// ReloadInterval is how often Run re-reads the three files and reloads
	// them if their content changed. Default 10s (DefaultReloadInterval);
	// negative is invalid.
	ReloadInterval time.Duration
}

// init checks the configuration and applies the defaults. Errors name the
// field, as the operator must fix it in configuration.
func (c *ServerConfig) init() error {
	if c.CertFile == "" {
		return errors.New("tls: ServerConfig.CertFile is required")
	}
	if c.KeyFile == "" {
		return errors.New("tls: ServerConfig.KeyFile is required")
	}
	if !c.ClientAuth.valid() {
		return fmt.Errorf("tls: ServerConfig.ClientAuth %v: want none, optional or require", c.ClientAuth)
	}
	if c.ClientAuth != ClientAuthNone && c.ClientCAFile == "" {
		return fmt.Errorf("tls: ServerConfig.ClientAuth %v needs ClientCAFile to verify client certificates against", c.ClientAuth)
	}
	if c.ClientAuth == ClientAuthNone && c.ClientCAFile != "" {
		// Refused rather than ignored: whoever set a CA file expects
		// client certificates to be checked.
		return fmt.Errorf("tls: ServerConfig.ClientCAFile %q is set but ClientAuth is none; set ClientAuth to optional or require", c.ClientCAFile)
	}
	if c.ReloadInterval < 0 {
		return fmt.Errorf("tls: ServerConfig.ReloadInterval %v is negative", c.ReloadInterval)
	}
	if c.ReloadInterval == 0 {
		c.ReloadInterval = DefaultReloadInterval
	}
	return nil
}

// Server holds a listener's current certificate and client CA pool and
// serves them to new handshakes.
type Server struct {
	cfg ServerConfig
	log *zap.Logger
	r   *reloader[serverGen]
}

// serverGen is one loaded generation of a Server's files.
type serverGen struct {
	cert      *stdtls.Certificate // Leaf is set
	clientCAs *x509.CertPool      // nil with ClientAuthNone
}

// NewServer checks cfg and loads its files. Errors name the field and file
// and what is wrong with it: missing, empty, not PEM, a key that does not
// match the certificate, an unparseable CA bundle. An expired (or not yet
// valid) certificate is logged as a warning, not refused, so that a
// restart during a late renewal still serves, and clients decide.
// A nil log discards.
func NewServer(cfg ServerConfig, log *zap.Logger) (*Server, error) {
	if err := cfg.init(); err != nil {
		return nil, err
	}
	if log == nil {
		log = zap.NewNop()
	}
	s := &Server{cfg: cfg, log: log}
	files := []file{{"CertFile", cfg.CertFile}, {"KeyFile", cfg.KeyFile}}
	if cfg.ClientCAFile != "" {
		files = append(files, file{"ClientCAFile", cfg.ClientCAFile})
	}
	load := func(content [][]byte) (*serverGen, error) { return loadServer(files, content) }
	r, err := newReloader(files, cfg.ReloadInterval, log, load, s.loaded)
	if err != nil {
		return nil, err
	}
	s.r = r
	return s, nil
}

// loadServer builds a generation from CertFile, KeyFile and, if present,
// ClientCAFile, in that order.
func loadServer(f []file, content [][]byte) (*serverGen, error) {
	cert, err := parseKeyPair(f[0], content[0], f[1], content[1])
	if err != nil {
		return nil, err
	}
	g := &serverGen{cert: cert}
	if len(f) > 2 {
		if g.clientCAs, err = parseCAPool(f[2], content[2]); err != nil {
			return nil, err
		}
	}
	return g, nil
}

func (s *Server) loaded(g *serverGen) {
	logLeaf(s.log, "tls: server certificate loaded", s.cfg.CertFile, g.cert.Leaf)
}

// Config returns the configuration for a listener, e.g.
// stdtls.NewListener(ln, s.Config()). Each call returns a new Config that
// follows reloads.
//
// It sets TLS 1.2 as the minimum and leaves cipher suites, curves and
// session tickets at Go's defaults (see the package doc). The certificate
// and client CA pool are looked up per handshake through
// GetConfigForClient, which hands crypto/tls a copy of this Config with the
// current generation filled in; so settings the caller adds to the returned
// Config (NextProtos, say) still apply, a reload affects new handshakes
// only, and connections already established are untouched. The copy costs
// one Config allocation per handshake, small beside the handshake itself.
// A resumed session is re-checked by crypto/tls against the ClientCAs of
// the handshake that resumes it, so a client CA rotation also applies to
// clients that resume.
//
// ClientCAs is also set to the pool as of this call, so that a copy made
// without GetConfigForClient still verifies client certificates against
// ClientCAFile and never falls back to the system roots.
func (s *Server) Config() *stdtls.Config {
	g := s.r.current()
	base := &stdtls.Config{
		MinVersion: stdtls.VersionTLS12,
		ClientAuth: s.cfg.ClientAuth.std(),
		ClientCAs:  g.clientCAs,
		GetCertificate: func(*stdtls.ClientHelloInfo) (*stdtls.Certificate, error) {
			return s.r.current().cert, nil
		},
	}
	base.GetConfigForClient = func(*stdtls.ClientHelloInfo) (*stdtls.Config, error) {
		// One load, so certificate and CA pool are of the same generation.
		g := s.r.current()
		c := base.Clone()
		c.GetConfigForClient = nil // crypto/tls does not recurse; cleared for clarity
		c.GetCertificate = nil
		c.Certificates = []stdtls.Certificate{*g.cert}
		c.ClientCAs = g.clientCAs
		return c, nil
	}
	return base
}

// Reload re-reads the files now. On error the previous certificate and CA
// pool stay in use and the error names the file at fault.
func (s *Server) Reload() error { return s.r.reload() }

// Run checks the files every ReloadInterval and reloads them when their
// content changes, logging each load and each failure. It returns
// ctx.Err() when ctx ends and starts no goroutines.
func (s *Server) Run(ctx context.Context) error {
	return s.r.run(ctx, "server certificate")
}

// logLeaf logs a loaded certificate's identity and validity, warning if it
// is outside its validity period. Only public facts are logged.
func logLeaf(log *zap.Logger, msg, path string, leaf *x509.Certificate) {
	fields := []zap.Field{
		zap.String("file", path),
		zap.String("subject", leaf.Subject.String()),
		zap.Strings("dns_names", leaf.DNSNames),
		zap.String("serial", leaf.SerialNumber.Text(16)),
		zap.Time("not_after", leaf.NotAfter),
	}
	now := time.Now()
	switch {
	case now.After(leaf.NotAfter):
		log.Warn(msg+"; it has EXPIRED and peers will refuse it", fields...)
	case now.Before(leaf.NotBefore):
		log.Warn(msg+"; it is NOT YET VALID and peers will refuse it", append(fields, zap.Time("not_before", leaf.NotBefore))...)
	default:
		log.Info(msg, fields...)
	}
}
