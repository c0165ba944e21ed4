package deploy

import (
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

// sidecarEnv is the sidecar's contract: the variables legacy pods already
// have (connection guide), plus Switchyard's own two and the Go runtime's
// GOMAXPROCS. Nothing else may configure the sidecar.
var sidecarEnv = []string{
	"REDIS_SENTINEL_HOSTS", "REDIS_SENTINEL_MASTER", "REDIS_SOCKET_TIMEOUT", "REDIS_MAX_CONNECTIONS",
	"REDIS_HOST", "REDIS_PORT",
	"REDIS_PASSWORD", "REDIS_PASSWORD_FILE", "REDIS_SENTINEL_PASSWORD", "REDIS_SENTINEL_PASSWORD_FILE",
	"SWITCHYARD_LISTEN", "SWITCHYARD_ADMIN_LISTEN", "GOMAXPROCS",
}

const sidecarFile = "sidecar/legacy-app.yaml"

// sidecar decodes the example strictly and returns it with its
// Switchyard container.
func sidecar(t *testing.T) (*appsv1.Deployment, *corev1.Container) {
	t.Helper()
	b, err := os.ReadFile(sidecarFile)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := decodeStrict(b)
	if err != nil {
		t.Fatalf("%s: %v", sidecarFile, err)
	}
	m := &manifests{env: sidecarFile, objects: objs}
	d := one[*appsv1.Deployment](t, m)
	for i := range d.Spec.Template.Spec.InitContainers {
		if c := &d.Spec.Template.Spec.InitContainers[i]; c.Name == "switchyard" {
			return d, c
		}
	}
	t.Fatalf("%s: no init container named switchyard", sidecarFile)
	return nil, nil
}

func envOf(c *corev1.Container) map[string]string {
	m := map[string]string{}
	for _, e := range c.Env {
		m[e.Name] = e.Value
	}
	return m
}

func TestSidecar(t *testing.T) {
	d, c := sidecar(t)
	matches(t, "Deployment", d.Spec.Selector, d.Spec.Template.Labels)

	if c.RestartPolicy == nil || *c.RestartPolicy != corev1.ContainerRestartPolicyAlways {
		t.Error("switchyard must be a native sidecar: an init container with restartPolicy: Always")
	}
	if len(c.EnvFrom) > 0 || slices.ContainsFunc(c.Args, func(a string) bool { return strings.Contains(a, "config") }) || len(c.VolumeMounts) > 0 {
		t.Errorf("the sidecar must be configured by the environment alone: envFrom %v, args %v, mounts %v", c.EnvFrom, c.Args, c.VolumeMounts)
	}
	env := envOf(c)
	for _, e := range c.Env {
		if !slices.Contains(sidecarEnv, e.Name) {
			t.Errorf("env %s is not in the sidecar's contract %v", e.Name, sidecarEnv)
		}
		if e.ValueFrom != nil && !strings.HasSuffix(e.Name, "PASSWORD") {
			t.Errorf("env %s comes from %v; only a password may come from a Secret", e.Name, e.ValueFrom)
		}
	}
	for _, name := range []string{"REDIS_SENTINEL_HOSTS", "REDIS_SENTINEL_MASTER"} {
		if env[name] == "" {
			t.Errorf("%s is not set", name)
		}
	}
	if env["SWITCHYARD_LISTEN"] != "127.0.0.1:6379" {
		t.Errorf("SWITCHYARD_LISTEN = %q, want 127.0.0.1:6379", env["SWITCHYARD_LISTEN"])
	}

	// The app talks to the sidecar.
	if n := len(d.Spec.Template.Spec.Containers); n != 1 {
		t.Fatalf("want one app container, have %d", n)
	}
	app := envOf(&d.Spec.Template.Spec.Containers[0])
	host, port, _ := net.SplitHostPort(env["SWITCHYARD_LISTEN"])
	if app["REDIS_HOST"] != host || app["REDIS_PORT"] != port {
		t.Errorf("the app connects to %s:%s, the sidecar listens on %s", app["REDIS_HOST"], app["REDIS_PORT"], env["SWITCHYARD_LISTEN"])
	}
	if app["REDIS_SENTINEL_HOSTS"] != "" {
		t.Error("the app should not follow Sentinel itself: the sidecar does")
	}

	// Probes reach the admin endpoint.
	_, adminPort, err := net.SplitHostPort(env["SWITCHYARD_ADMIN_LISTEN"])
	if err != nil || strings.HasPrefix(env["SWITCHYARD_ADMIN_LISTEN"], "127.") {
		t.Fatalf("SWITCHYARD_ADMIN_LISTEN = %q: the kubelet probes the pod's address, not loopback", env["SWITCHYARD_ADMIN_LISTEN"])
	}
	for _, pr := range []struct {
		name  string
		probe *corev1.Probe
		path  string
	}{{"startup", c.StartupProbe, "/readyz"}, {"liveness", c.LivenessProbe, "/healthz"}} {
		if pr.probe == nil || pr.probe.HTTPGet == nil || pr.probe.HTTPGet.Path != pr.path {
			t.Errorf("%s probe: want an HTTP GET of %s", pr.name, pr.path)
			continue
		}
		cp := containerPort(c, pr.probe.HTTPGet.Port)
		if cp == nil || strconv.Itoa(int(cp.ContainerPort)) != adminPort {
			t.Errorf("%s probe port %s is not the admin port %s", pr.name, pr.probe.HTTPGet.Port.String(), adminPort)
		}
	}

	sc := c.SecurityContext
	if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
		t.Errorf("sidecar securityContext %+v: want read-only root, no privilege escalation, drop ALL", sc)
	}
}

// TestSidecarPassesCheckConfig runs check-config with the sidecar's
// environment and nothing else.
func TestSidecarPassesCheckConfig(t *testing.T) {
	_, c := sidecar(t)
	root := t.TempDir()
	var env []string
	for _, e := range c.Env {
		v := e.Value
		switch {
		case e.ValueFrom != nil:
			v = "stand-in-password"
		case strings.HasSuffix(e.Name, "_FILE"):
			local := filepath.Join(root, filepath.FromSlash(v))
			writeFile(t, local, []byte("stand-in-password\n"))
			v = local
		}
		env = append(env, e.Name+"="+v)
	}
	out, err := checkConfig(t, env)
	if err != nil {
		t.Fatalf("check-config rejects the sidecar's environment %v: %v\n%s", env, err, out)
	}
	if !strings.HasPrefix(out, "configuration OK: 1 group") {
		t.Errorf("check-config printed %q", out)
	}
}
