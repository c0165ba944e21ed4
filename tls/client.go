package tls

import (
	"context"
	stdtls "crypto/tls"
	"crypto/x509"
	"fmt"
	"time"

	"go.uber.org/zap"
)

// ClientConfig is TLS from the proxy to Redis or to the Sentinels.
type ClientConfig struct {
	// CAFile is a PEM bundle of the CAs the server certificate must chain
	// to. Default "": the system roots.
	CAFile string
	// CertFile and KeyFile are a PEM client certificate and its key, for
	// servers that ask for one (Redis tls-auth-clients). Both or neither;
	// default neither.
	CertFile, KeyFile string
	// ServerName is the name the server certificate is verified against
	// (and sent as SNI), whatever address is dialled. Sentinel hands out
	// IP addresses, which the certificates of a Redis group rarely list;
	// set this to a name they do list. Default "": crypto/tls uses the host
	// of the dialled address (with stdtls.Dial; with stdtls.Client and no
	// name the handshake fails rather than skip the check).
	ServerName string
	// InsecureSkipVerify turns off verification of the server certificate.
	// Default false. It is the only way to turn verification off, and it
	// may not be combined with CAFile, which would suggest otherwise.
	InsecureSkipVerify bool
	// ReloadInterval is how often Run re-reads the files and reloads them
	// if their content changed. Default 10s (DefaultReloadInterval);
	// negative is invalid.
	ReloadInterval time.Duration
}

func (c *ClientConfig) init() error {
	if (c.CertFile == "") != (c.KeyFile == "") {
		return fmt.Errorf("tls: ClientConfig.CertFile %q and KeyFile %q: set both or neither", c.CertFile, c.KeyFile)
	}
	if c.InsecureSkipVerify && c.CAFile != "" {
		return fmt.Errorf("tls: ClientConfig.InsecureSkipVerify is set together with CAFile %q; verification would be off, so pick one", c.CAFile)
	}
	if c.ReloadInterval < 0 {
		return fmt.Errorf("tls: ClientConfig.ReloadInterval %v is negative", c.ReloadInterval)
	}
	if c.ReloadInterval == 0 {
		c.ReloadInterval = DefaultReloadInterval
	}
	return nil
}

// Client holds the current client certificate and CA pool for dialling
// Redis or the Sentinels.
type Client struct {
	cfg ClientConfig
	log *zap.Logger
	r   *reloader[clientGen]
}

// clientGen is one loaded generation of a Client's files.
type clientGen struct {
	roots *x509.CertPool      // nil: the system roots
	cert  *stdtls.Certificate // nil: no client certificate
}

// NewClient checks cfg and loads its files; errors name the field and the
// file, as for NewServer. A nil log discards.
func NewClient(cfg ClientConfig, log *zap.Logger) (*Client, error) {
	if err := cfg.init(); err != nil {
		return nil, err
	}
	if log == nil {
		log = zap.NewNop()
	}
	if cfg.InsecureSkipVerify {
		// Explicit, but never silent.
		log.Warn("tls: server certificate verification is OFF (InsecureSkipVerify)", zap.String("server_name", cfg.ServerName))
	}
	c := &Client{cfg: cfg, log: log}
	var files []file
	if cfg.CAFile != "" {
		files = append(files, file{"CAFile", cfg.CAFile})
	}
	if cfg.CertFile != "" {
		files = append(files, file{"CertFile", cfg.CertFile}, file{"KeyFile", cfg.KeyFile})
	}
	load := func(content [][]byte) (*clientGen, error) { return loadClient(files, content) }
	r, err := newReloader(files, cfg.ReloadInterval, log, load, c.loaded)
	if err != nil {
		return nil, err
	}
	c.r = r
	return c, nil
}

// loadClient builds a generation from the files NewClient listed: CAFile
// if set, then CertFile and KeyFile if set.
func loadClient(f []file, content [][]byte) (*clientGen, error) {
	g := &clientGen{}
	if len(f) > 0 && f[0].field == "CAFile" {
		var err error
		if g.roots, err = parseCAPool(f[0], content[0]); err != nil {
			return nil, err
		}
		f, content = f[1:], content[1:]
	}
	if len(f) == 2 {
		var err error
		if g.cert, err = parseKeyPair(f[0], content[0], f[1], content[1]); err != nil {
			return nil, err
		}
	}
	return g, nil
}

func (c *Client) loaded(g *clientGen) {
	if g.cert != nil {
		logLeaf(c.log, "tls: client certificate loaded", c.cfg.CertFile, g.cert.Leaf)
	} else if c.cfg.CAFile != "" {
		c.log.Info("tls: CA bundle loaded", zap.String("file", c.cfg.CAFile))
	}
}

// Config returns the configuration for one or more dials, e.g.
// stdtls.Client(conn, c.Config()). TLS 1.2 is the minimum; cipher suites
// are Go's defaults.
//
// The client certificate is looked up per handshake (GetClientCertificate),
// so a stored Config follows reloads of CertFile and KeyFile. RootCAs
// cannot be looked up per handshake without turning off crypto/tls's own
// verification, so it is the CAFile pool as of this call: call Config again
// (it is cheap) for dials that should see a rotated CAFile.
func (c *Client) Config() *stdtls.Config {
	cfg := &stdtls.Config{
		MinVersion:         stdtls.VersionTLS12,
		RootCAs:            c.r.current().roots,
		ServerName:         c.cfg.ServerName,
		InsecureSkipVerify: c.cfg.InsecureSkipVerify,
	}
	if c.cfg.CertFile != "" {
		cfg.GetClientCertificate = func(*stdtls.CertificateRequestInfo) (*stdtls.Certificate, error) {
			return c.r.current().cert, nil
		}
	}
	return cfg
}

// Reload re-reads the files now. On error the previous certificate and CA
// pool stay in use and the error names the file at fault.
func (c *Client) Reload() error { return c.r.reload() }

// Run checks the files every ReloadInterval and reloads them when their
// content changes, logging each load and each failure. Without files it
// just waits. It returns ctx.Err() when ctx ends and starts no goroutines.
func (c *Client) Run(ctx context.Context) error {
	return c.r.run(ctx, "client certificate and CA bundle")
}
