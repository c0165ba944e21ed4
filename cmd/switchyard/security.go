package main

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"time"

	"github.com/pnats/switchyard/proxy"
	sytls "github.com/pnats/switchyard/tls"
	"go.uber.org/zap"
)

// groupExtras are a group's TLS, client authentication and replica-read
// settings; groupConfig embeds them inline.
type groupExtras struct {
	// TLS adds a TLS listener beside (or instead of) the plain one.
	TLS *listenerTLS `yaml:"tls"`
	// ClientAuth makes clients authenticate to the proxy. Default: none;
	// then clients' own AUTH is passed through to Redis.
	ClientAuth *clientAuth `yaml:"client_auth"`
	// BackendTLS is TLS to the Redis nodes. Default: plain.
	BackendTLS *clientTLS `yaml:"backend_tls"`

	// ReadListen is an optional read port: reads go to healthy replicas,
	// writes are refused. Default: none.
	ReadListen string `yaml:"read_listen"`
	// ReadPolicy is where reads on the main port go: master (default),
	// prefer-replica or replica.
	ReadPolicy string `yaml:"read_policy"`
	// MaxReplicaLagBytes is the most a replica may be behind the master
	// and still serve reads, bytes. Default 1048576 (1 MiB).
	MaxReplicaLagBytes int64 `yaml:"max_replica_lag_bytes"`
	// ReadYourWrites keeps a client's reads on the master for this long
	// after it wrote. Default 0: off.
	ReadYourWrites time.Duration `yaml:"read_your_writes"`
}

type listenerTLS struct {
	// Listen is the TLS client address, host:port. Required.
	Listen string `yaml:"listen"`
	// CertFile and KeyFile are PEM files, reloaded when they change.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ClientCAFile enables client certificates (mTLS) with ClientAuth
	// optional or require. Default: none.
	ClientCAFile string `yaml:"client_ca_file"`
	// ClientAuth is none (default), optional or require.
	ClientAuth string `yaml:"client_auth"`
	// ReloadInterval is how often the files are checked for a new
	// certificate (cert-manager rotation). Default 10s.
	ReloadInterval time.Duration `yaml:"reload_interval"`
	// HandshakeTimeout bounds a client's TLS handshake, and the refusal
	// of a client over max_clients. Default 10s.
	HandshakeTimeout time.Duration `yaml:"handshake_timeout"`
	// Announce is the host:port clients outside dial for this listener.
	// A group's is what the Sentinel facade names as its master to
	// clients that reach the facade over TLS; the facade's own is shown
	// in its INFO. Default: Listen, with an unspecified host replaced by
	// the announce host (see config.announceHost).
	Announce string `yaml:"announce"`
}

type clientTLS struct {
	// CAFile verifies the server; default: the system roots.
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile are an optional client certificate.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ServerName is the name certificates are checked against, whatever
	// IP Sentinel hands out. Default: the dialled host.
	ServerName string `yaml:"server_name"`
	// ReloadInterval is how often the files are checked for new content
	// (group.watch reloads them). Default 10s.
	ReloadInterval time.Duration `yaml:"reload_interval"`
}

type clientAuth struct {
	// Password (or PasswordFile) is the default user's: AUTH <password>.
	Password     string `yaml:"password"`
	PasswordFile string `yaml:"password_file"`
	// Users are ACL-style users: AUTH <name> <password>.
	Users []clientUser `yaml:"users"`
}

type clientUser struct {
	Name         string `yaml:"name"`
	Password     string `yaml:"password"`
	PasswordFile string `yaml:"password_file"`
}

// validate checks a TLS listener's settings; field names its owner.
func (t *listenerTLS) validate(field string) error {
	if err := checkAddr(field+".tls.listen", t.Listen); err != nil {
		return err
	}
	if t.CertFile == "" || t.KeyFile == "" {
		return fmt.Errorf("%s.tls: cert_file and key_file are required", field)
	}
	ca, err := sytls.ParseClientAuth(t.ClientAuth)
	if err != nil {
		return fmt.Errorf("%s.tls.client_auth=%q: want none, optional or require", field, t.ClientAuth)
	}
	switch {
	case ca != sytls.ClientAuthNone && t.ClientCAFile == "":
		return fmt.Errorf("%s.tls.client_auth=%q needs client_ca_file, to verify client certificates against", field, t.ClientAuth)
	case ca == sytls.ClientAuthNone && t.ClientCAFile != "":
		return fmt.Errorf("%s.tls.client_ca_file=%q is set but client_auth is none: set client_auth to optional or require", field, t.ClientCAFile)
	}
	if t.ReloadInterval < 0 {
		return fmt.Errorf("%s.tls.reload_interval=%v: must not be negative", field, t.ReloadInterval)
	}
	if t.HandshakeTimeout < 0 {
		return fmt.Errorf("%s.tls.handshake_timeout=%v: must not be negative", field, t.HandshakeTimeout)
	}
	if t.Announce != "" {
		if err := checkAnnounce(field+".tls.announce", t.Announce); err != nil {
			return err
		}
	}
	return nil
}

// validate checks TLS to Redis or to the Sentinels; field is its name.
func (t *clientTLS) validate(field string) error {
	if t != nil && t.ReloadInterval < 0 {
		return fmt.Errorf("%s.reload_interval=%v: must not be negative", field, t.ReloadInterval)
	}
	return nil
}

func (x *groupExtras) validate(field string) error {
	if t := x.TLS; t != nil {
		if err := t.validate(field); err != nil {
			return err
		}
	}
	if err := x.BackendTLS.validate(field + ".backend_tls"); err != nil {
		return err
	}
	if x.ReadListen != "" {
		if err := checkAddr(field+".read_listen", x.ReadListen); err != nil {
			return err
		}
	}
	if _, err := parseReadPolicy(x.ReadPolicy); err != nil {
		return fmt.Errorf("%s.read_policy=%q: want master, prefer-replica or replica", field, x.ReadPolicy)
	}
	if x.MaxReplicaLagBytes < 0 {
		return fmt.Errorf("%s.max_replica_lag_bytes=%d: must not be negative", field, x.MaxReplicaLagBytes)
	}
	if x.ReadYourWrites < 0 {
		return fmt.Errorf("%s.read_your_writes=%v: must not be negative", field, x.ReadYourWrites)
	}
	if a := x.ClientAuth; a != nil {
		if a.Password == "" && a.PasswordFile == "" && len(a.Users) == 0 {
			return fmt.Errorf("%s.client_auth: give a password, a password_file or users", field)
		}
		for i, u := range a.Users {
			if u.Name == "" {
				return fmt.Errorf("%s.client_auth.users[%d].name is empty", field, i)
			}
		}
	}
	return nil
}

// resolve reads the password files of client_auth.
func (x *groupExtras) resolve(field string) error {
	a := x.ClientAuth
	if a == nil {
		return nil
	}
	var err error
	if a.Password, err = readPassword(field+".client_auth", a.Password, a.PasswordFile, true); err != nil {
		return err
	}
	a.PasswordFile = ""
	for i := range a.Users {
		u := &a.Users[i]
		f := fmt.Sprintf("%s.client_auth.users[%d] (%s)", field, i, u.Name)
		if u.Password, err = readPassword(f, u.Password, u.PasswordFile, true); err != nil {
			return err
		}
		if u.Password == "" {
			// AUTH <name> "" would let anyone in.
			return fmt.Errorf("%s: give a password or a password_file", f)
		}
		u.PasswordFile = ""
	}
	return nil
}

// authenticator checks client credentials in constant time. The default
// user is the one AUTH <password> names.
func (a *clientAuth) authenticator() func(user, pass string) bool {
	users := map[string]string{}
	if a.Password != "" {
		users["default"] = a.Password
	}
	for _, u := range a.Users {
		users[u.Name] = u.Password
	}
	return func(user, pass string) bool {
		want, ok := users[user]
		// Compare even for an unknown user, so timing does not tell
		// which users exist.
		eq := subtle.ConstantTimeCompare([]byte(want), []byte(pass)) == 1
		return ok && eq && want != ""
	}
}

func parseReadPolicy(s string) (proxy.ReadPolicy, error) {
	switch s {
	case "", "master":
		return proxy.ReadMaster, nil
	case "prefer-replica":
		return proxy.ReadPreferReplica, nil
	case "replica":
		return proxy.ReadReplica, nil
	}
	return 0, errors.New("unknown read policy")
}

// clientTLSConfig builds the reloading TLS client for backends or Sentinels.
func (t *clientTLS) build(log *zap.Logger) (*sytls.Client, error) {
	if t == nil {
		return nil, nil
	}
	return sytls.NewClient(sytls.ClientConfig{CAFile: t.CAFile, CertFile: t.CertFile, KeyFile: t.KeyFile, ServerName: t.ServerName,
		ReloadInterval: t.ReloadInterval}, log)
}

// serverTLS builds the reloading TLS server for a group's TLS listener.
func (t *listenerTLS) build(log *zap.Logger) (*sytls.Server, error) {
	ca, _ := sytls.ParseClientAuth(t.ClientAuth)
	return sytls.NewServer(sytls.ServerConfig{CertFile: t.CertFile, KeyFile: t.KeyFile, ClientCAFile: t.ClientCAFile,
		ClientAuth: ca, ReloadInterval: t.ReloadInterval}, log)
}

func (g *groupConfig) tlsListen() string {
	if g.TLS == nil {
		return ""
	}
	return g.TLS.Listen
}
