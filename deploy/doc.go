// Package deploy renders and checks Switchyard's Kubernetes deployment:
// the Helm chart in helm/switchyard, its values file for each
// environment, the manifests rendered from them in rendered/ (for users
// without Helm), and the sidecar example in sidecar/.
//
// It is a Go module of its own so that the Kubernetes API types and
// Helm's engine, which only the tests and the generator need, stay out of
// the proxy's module. Its tests decode every rendered manifest strictly
// into the Kubernetes API types, check that selectors, labels and ports
// agree, and run the proxy's own `switchyard check-config` on the
// configuration the chart renders.
//
// Regenerate rendered/ after changing the chart or a values file:
//
//	cd deploy && go generate ./...
package deploy

//go:generate go run ./cmd/render
