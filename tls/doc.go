// Package tls will build and reload the *crypto/tls.Config values for
// Switchyard's listeners and backend connections (see the TLS issue).
//
// The package is named after its noun, so it shadows crypto/tls; inside it,
// crypto/tls is imported as "stdtls", and callers import this package as
// "sytls" where they need both.
package tls
