package deploy

import (
	"debug/buildinfo"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

// dockerfile is what the tests read from ../Dockerfile.
type dockerfile struct {
	buildEnv  []string // VAR=value before `go build`
	buildArgs []string // go build's arguments
	final     string   // the last FROM's image
	user      string
	expose    []int32
	entry     string
}

// parseDockerfile reads the few instructions the tests check. It knows
// only what this project's Dockerfile uses: line continuations, ARG,
// FROM, RUN, USER, EXPOSE and an exec-form ENTRYPOINT.
func parseDockerfile(t *testing.T, path string, args map[string]string) dockerfile {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	var cur string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "#") {
			continue
		}
		if s, ok := strings.CutSuffix(l, "\\"); ok {
			cur += s + " "
			continue
		}
		lines = append(lines, strings.TrimSpace(cur+l))
		cur = ""
	}
	var d dockerfile
	for _, l := range lines {
		instr, rest, _ := strings.Cut(l, " ")
		switch strings.ToUpper(instr) {
		case "FROM":
			f := strings.Fields(rest)
			for len(f) > 0 && strings.HasPrefix(f[0], "--") {
				f = f[1:]
			}
			d.final = f[0]
		case "RUN":
			words := shellWords(t, expand(rest, args))
			i := slices.Index(words, "go")
			if i < 0 || i+1 >= len(words) || words[i+1] != "build" {
				continue
			}
			d.buildEnv, d.buildArgs = words[:i], words[i+2:]
		case "USER":
			d.user = strings.TrimSpace(rest)
		case "EXPOSE":
			for _, p := range strings.Fields(rest) {
				p, _, _ = strings.Cut(p, "/")
				n, err := strconv.Atoi(p)
				if err != nil {
					t.Fatalf("EXPOSE %q: %v", p, err)
				}
				d.expose = append(d.expose, int32(n))
			}
		case "ENTRYPOINT":
			d.entry = rest
		}
	}
	if d.buildArgs == nil {
		t.Fatal("Dockerfile: no RUN ... go build line")
	}
	return d
}

// expand replaces ${NAME} and $NAME with args[NAME].
func expand(s string, args map[string]string) string {
	return os.Expand(s, func(k string) string { return args[k] })
}

// shellWords splits a command line as sh would for the simple quoting the
// Dockerfile uses: spaces, and double or single quotes.
func shellWords(t *testing.T, s string) []string {
	t.Helper()
	var words []string
	var w strings.Builder
	in, quote := false, rune(0)
	for _, r := range s {
		switch {
		case quote != 0 && r == quote:
			quote = 0
		case quote != 0:
			w.WriteRune(r)
		case r == '"' || r == '\'':
			quote, in = r, true
		case r == ' ' || r == '\t':
			if in {
				words = append(words, w.String())
				w.Reset()
				in = false
			}
		default:
			w.WriteRune(r)
			in = true
		}
	}
	if quote != 0 {
		t.Fatalf("unterminated quote in %q", s)
	}
	if in {
		words = append(words, w.String())
	}
	return words
}

// testVersion is stamped into the test binary.
const testVersion = "v0.0.0-deploy-test"

var (
	buildOnce sync.Once
	buildBin  string
	buildErr  string
)

// switchyardBinary builds cmd/switchyard from the parent module the way
// the Dockerfile does, once per test run.
func switchyardBinary(t *testing.T) (string, dockerfile) {
	t.Helper()
	d := parseDockerfile(t, "../Dockerfile", map[string]string{
		"VERSION": testVersion, "TARGETOS": runtime.GOOS, "TARGETARCH": runtime.GOARCH,
	})
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "switchyard-deploy-test")
		if err != nil {
			buildErr = err.Error()
			return
		}
		bin := filepath.Join(dir, "switchyard")
		args := slices.Clone(d.buildArgs)
		if i := slices.Index(args, "-o"); i >= 0 && i+1 < len(args) {
			args[i+1] = bin
		} else {
			args = append([]string{"-o", bin}, args...)
		}
		// The parent is a module of its own: build it there.
		cmd := exec.Command("go", append([]string{"build", "-C", ".."}, args...)...)
		cmd.Env = append(os.Environ(), d.buildEnv...)
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = "go build " + strings.Join(args, " ") + ": " + err.Error() + "\n" + string(out)
			return
		}
		buildBin = bin
	})
	if buildErr != "" {
		t.Fatal(buildErr)
	}
	return buildBin, d
}

func TestMain(m *testing.M) {
	code := m.Run()
	if buildBin != "" {
		os.RemoveAll(filepath.Dir(buildBin))
	}
	os.Exit(code)
}

func TestImageBinaryIsStatic(t *testing.T) {
	bin, d := switchyardBinary(t)
	if !slices.Contains(d.buildEnv, "CGO_ENABLED=0") {
		t.Errorf("the Dockerfile's go build runs with %v, want CGO_ENABLED=0", d.buildEnv)
	}
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("the binary has a PT_INTERP header: it needs a dynamic loader, which distroless static lacks")
		}
		if p.Type == elf.PT_DYNAMIC {
			t.Error("the binary has a PT_DYNAMIC header: it is dynamically linked")
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Errorf("the binary needs shared libraries %v", libs)
	}
	info, err := buildinfo.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	settings := map[string]string{}
	for _, s := range info.Settings {
		settings[s.Key] = s.Value
	}
	if settings["CGO_ENABLED"] != "0" || settings["-trimpath"] != "true" {
		t.Errorf("build settings CGO_ENABLED=%q -trimpath=%q, want 0 and true", settings["CGO_ENABLED"], settings["-trimpath"])
	}
	// Go leaves -ldflags out of the build info under -trimpath; read
	// them from the Dockerfile instead (TestImageVersionIsStamped runs
	// the result).
	if i := slices.Index(d.buildArgs, "-ldflags"); i < 0 || i+1 >= len(d.buildArgs) ||
		!strings.Contains(d.buildArgs[i+1], "-X main.version="+testVersion) {
		t.Errorf("the Dockerfile's go build %v does not stamp main.version from VERSION", d.buildArgs)
	}
}

func TestImageVersionIsStamped(t *testing.T) {
	bin, _ := switchyardBinary(t)
	out, err := exec.Command(bin, "version").CombinedOutput()
	if err != nil {
		t.Fatalf("switchyard version: %v\n%s", err, out)
	}
	if got, want := strings.TrimSpace(string(out)), "switchyard "+testVersion; got != want {
		t.Errorf("switchyard version printed %q, want %q", got, want)
	}
}

// TestImageAgreesWithManifests: the image's user is the one the pods run
// as, every port a manifest declares is exposed, and the manifests keep
// the image's entrypoint.
func TestImageAgreesWithManifests(t *testing.T) {
	d := parseDockerfile(t, "../Dockerfile", nil)
	if !strings.Contains(d.final, "distroless/static") || !strings.HasSuffix(d.final, ":nonroot") {
		t.Errorf("final image %q: want distroless static, nonroot", d.final)
	}
	if d.entry != `["/switchyard"]` {
		t.Errorf("ENTRYPOINT %s, want [\"/switchyard\"]", d.entry)
	}
	uid, gid, _ := strings.Cut(d.user, ":")
	if uid == "" || uid == "0" || uid == "root" {
		t.Fatalf("USER %q: want a non-root numeric user", d.user)
	}
	check := func(t *testing.T, what string, pod corev1.PodSpec, c corev1.Container) {
		if len(c.Command) > 0 {
			t.Errorf("%s: command %v overrides the image's ENTRYPOINT", what, c.Command)
		}
		psc := pod.SecurityContext
		runAs := func(container, pod *int64) string {
			if container != nil {
				return strconv.FormatInt(*container, 10)
			}
			if pod != nil {
				return strconv.FormatInt(*pod, 10)
			}
			return ""
		}
		var cu, cg, pu, pg *int64
		if c.SecurityContext != nil {
			cu, cg = c.SecurityContext.RunAsUser, c.SecurityContext.RunAsGroup
		}
		if psc != nil {
			pu, pg = psc.RunAsUser, psc.RunAsGroup
		}
		if u := runAs(cu, pu); u != uid {
			t.Errorf("%s: runs as user %q, the image's USER is %q", what, u, uid)
		}
		if g := runAs(cg, pg); gid != "" && g != gid {
			t.Errorf("%s: runs as group %q, the image's USER is %q", what, g, d.user)
		}
		for _, p := range c.Ports {
			if !slices.Contains(d.expose, p.ContainerPort) {
				t.Errorf("%s: port %d (%s) is not in the Dockerfile's EXPOSE %v", what, p.ContainerPort, p.Name, d.expose)
			}
		}
	}
	forEachEnv(t, func(t *testing.T, env Environment, m *manifests) {
		dep := one[*appsv1.Deployment](t, m)
		check(t, "Deployment "+dep.Name, dep.Spec.Template.Spec, dep.Spec.Template.Spec.Containers[0])
	})
	t.Run("sidecar", func(t *testing.T) {
		dep, c := sidecar(t)
		check(t, "sidecar", dep.Spec.Template.Spec, *c)
	})
}
