package tls

import (
	stdtls "crypto/tls"
	"fmt"
)

// ClientAuth is a listener's client-certificate policy.
type ClientAuth int

const (
	// ClientAuthNone asks for no client certificate. The default.
	ClientAuthNone ClientAuth = iota
	// ClientAuthOptional asks for a certificate and, if one is sent,
	// verifies it against ClientCAFile; clients without one are accepted
	// (and should then authenticate with a password).
	ClientAuthOptional
	// ClientAuthRequire refuses clients without a certificate that
	// verifies against ClientCAFile.
	ClientAuthRequire
)

// ParseClientAuth parses "none", "optional" or "require". The empty string
// is ClientAuthNone, so an unset environment variable means the default.
func ParseClientAuth(s string) (ClientAuth, error) {
	switch s {
	case "", "none":
		return ClientAuthNone, nil
	case "optional":
		return ClientAuthOptional, nil
	case "require":
		return ClientAuthRequire, nil
	}
	return 0, fmt.Errorf(`tls: client auth %.100q: want "none", "optional" or "require"`, s)
}

// String returns the name ParseClientAuth accepts.
func (a ClientAuth) String() string {
	switch a {
	case ClientAuthNone:
		return "none"
	case ClientAuthOptional:
		return "optional"
	case ClientAuthRequire:
		return "require"
	}
	return fmt.Sprintf("ClientAuth(%d)", int(a))
}

// std maps the policy onto crypto/tls. Every mode that looks at a client
// certificate verifies it: RequestClientCert and RequireAnyClientCert,
// which accept any certificate unverified, are deliberately not reachable.
func (a ClientAuth) std() stdtls.ClientAuthType {
	switch a {
	case ClientAuthOptional:
		return stdtls.VerifyClientCertIfGiven
	case ClientAuthRequire:
		return stdtls.RequireAndVerifyClientCert
	}
	return stdtls.NoClientCert
}

func (a ClientAuth) valid() bool {
	return a >= ClientAuthNone && a <= ClientAuthRequire
}
