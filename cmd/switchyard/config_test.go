package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// setEnv clears every variable the binary reads, then sets kv.
func setEnv(t *testing.T, kv map[string]string) {
	t.Helper()
	for _, k := range []string{"SWITCHYARD_CONFIG", "SWITCHYARD_LISTEN", "SWITCHYARD_ADMIN_LISTEN",
		"SWITCHYARD_LOG_LEVEL", "SWITCHYARD_LOG_FORMAT", "REDIS_HOST", "REDIS_PORT",
		"REDIS_SENTINEL_HOSTS", "REDIS_SENTINEL_MASTER", "REDIS_SOCKET_TIMEOUT", "REDIS_MAX_CONNECTIONS",
		"REDIS_USERNAME", "REDIS_PASSWORD", "REDIS_PASSWORD_FILE", "REDIS_SENTINEL_USERNAME", "REDIS_SENTINEL_PASSWORD",
		"REDIS_SENTINEL_PASSWORD_FILE", "SWITCHYARD_DRAIN_TIMEOUT", "SWITCHYARD_SENTINEL_LISTEN", "SWITCHYARD_ANNOUNCE",
		"SWITCHYARD_TLS_CERT_FILE", "SWITCHYARD_TLS_KEY_FILE", "SWITCHYARD_TLS_CLIENT_CA_FILE", "SWITCHYARD_PASSWORD",
		"SWITCHYARD_PASSWORD_FILE", "SWITCHYARD_EVENT_LOOP", "SWITCHYARD_IO_URING"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	for k, v := range kv {
		t.Setenv(k, v)
	}
}

func TestEnvConfig(t *testing.T) {
	t.Run("fixed upstream", func(t *testing.T) {
		setEnv(t, map[string]string{"REDIS_HOST": "10.0.0.5", "REDIS_PORT": "6380", "REDIS_SOCKET_TIMEOUT": "0.1"})
		c, err := loadConfig("")
		if err != nil {
			t.Fatal(err)
		}
		g := c.Groups[0]
		if g.Upstream != "10.0.0.5:6380" || g.Listen != "127.0.0.1:6379" || g.Sentinel != nil {
			t.Fatalf("group = %+v", g)
		}
		// Not a read timeout: on the shared backend connections it would
		// fail everyone's commands behind one slow one. Nor, at 0.1 s, the
		// dial timeout, which also bounds Sentinel polls and ROLE checks.
		if g.ReadTimeout != 0 || g.DialTimeout != 0 {
			t.Fatalf("REDIS_SOCKET_TIMEOUT=0.1 gave read %v dial %v, want the defaults", g.ReadTimeout, g.DialTimeout)
		}
		if len(c.warnings) != 1 || !strings.Contains(c.warnings[0], "REDIS_SOCKET_TIMEOUT=0.1") {
			t.Fatalf("warnings %q", c.warnings)
		}
		if c.AdminListen != "127.0.0.1:9190" {
			t.Fatalf("admin default %q", c.AdminListen)
		}
		if g.EventLoop != nil {
			t.Fatalf("event_loop set without SWITCHYARD_EVENT_LOOP: %v", *g.EventLoop)
		}
		if g.IOUring != nil {
			t.Fatalf("io_uring set without SWITCHYARD_IO_URING: %v", *g.IOUring)
		}
	})
	t.Run("socket timeout of seconds", func(t *testing.T) {
		setEnv(t, map[string]string{"REDIS_HOST": "10.0.0.5", "REDIS_SOCKET_TIMEOUT": "2.5"})
		c, err := loadConfig("")
		if err != nil {
			t.Fatal(err)
		}
		if g := c.Groups[0]; g.DialTimeout != 2500*time.Millisecond || g.ReadTimeout != 0 || len(c.warnings) != 0 {
			t.Fatalf("REDIS_SOCKET_TIMEOUT=2.5 gave dial %v read %v, warnings %q", g.DialTimeout, g.ReadTimeout, c.warnings)
		}
	})
	t.Run("event loop off", func(t *testing.T) {
		setEnv(t, map[string]string{"REDIS_HOST": "10.0.0.5", "SWITCHYARD_EVENT_LOOP": "false"})
		c, err := loadConfig("")
		if err != nil {
			t.Fatal(err)
		}
		if g := c.Groups[0]; g.EventLoop == nil || *g.EventLoop {
			t.Fatalf("SWITCHYARD_EVENT_LOOP=false gave %v", g.EventLoop)
		}
	})
	t.Run("io_uring off", func(t *testing.T) {
		setEnv(t, map[string]string{"REDIS_HOST": "10.0.0.5", "SWITCHYARD_IO_URING": "false"})
		c, err := loadConfig("")
		if err != nil {
			t.Fatal(err)
		}
		if g := c.Groups[0]; g.IOUring == nil || *g.IOUring {
			t.Fatalf("SWITCHYARD_IO_URING=false gave %v", g.IOUring)
		}
	})
	// The connection guide lists both sets; a pod given all of them
	// follows Sentinel and is told that REDIS_HOST is ignored.
	t.Run("sentinel and host", func(t *testing.T) {
		setEnv(t, map[string]string{
			"REDIS_SENTINEL_HOSTS":  "platform-kv-sentinel.platform.svc:26379",
			"REDIS_SENTINEL_MASTER": "platform-kv-master",
			"REDIS_HOST":            "platform-kv.platform.svc",
		})
		c, err := loadConfig("")
		if err != nil {
			t.Fatal(err)
		}
		if g := c.Groups[0]; g.Sentinel == nil || g.Upstream != "" {
			t.Fatalf("group = %+v, want Sentinel mode", g)
		}
		if len(c.warnings) != 1 || !strings.Contains(c.warnings[0], "REDIS_HOST=platform-kv.platform.svc is ignored") {
			t.Fatalf("warnings %q", c.warnings)
		}
	})
	t.Run("sentinel", func(t *testing.T) {
		setEnv(t, map[string]string{
			"REDIS_SENTINEL_HOSTS":  "platform-kv-sentinel.platform.svc:26379, other:26379",
			"REDIS_SENTINEL_MASTER": "platform-kv-master",
			"SWITCHYARD_LISTEN":     "127.0.0.1:7000",
		})
		c, err := loadConfig("")
		if err != nil {
			t.Fatal(err)
		}
		g := c.Groups[0]
		if g.Sentinel == nil || g.Sentinel.MasterName != "platform-kv-master" || len(g.Sentinel.Addrs) != 2 ||
			g.Sentinel.Addrs[1] != "other:26379" || !*g.Sentinel.Discover || g.Listen != "127.0.0.1:7000" {
			t.Fatalf("group = %+v sentinel %+v", g, g.Sentinel)
		}
	})
}

func TestConfigErrorsNameFieldAndValue(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		file string
		want []string
	}{
		{name: "nothing set", env: map[string]string{}, want: []string{"REDIS_SENTINEL_HOSTS", "REDIS_HOST"}},
		{name: "sentinel without master", env: map[string]string{"REDIS_SENTINEL_HOSTS": "s:26379"}, want: []string{"REDIS_SENTINEL_MASTER"}},
		{name: "bad port", env: map[string]string{"REDIS_HOST": "h", "REDIS_PORT": "70000"}, want: []string{"REDIS_PORT=70000"}},
		{name: "bad listen", env: map[string]string{"REDIS_HOST": "h", "SWITCHYARD_LISTEN": "nonsense"}, want: []string{"listen", "nonsense", "host:port"}},
		{name: "negative timeout", env: map[string]string{"REDIS_HOST": "h", "REDIS_SOCKET_TIMEOUT": "-1"}, want: []string{"REDIS_SOCKET_TIMEOUT=-1"}},
		{name: "env not a number", env: map[string]string{"REDIS_HOST": "h", "REDIS_PORT": "abc"}, want: []string{`REDIS_PORT="abc": want a whole number`}},
		{name: "env duration without unit", env: map[string]string{"REDIS_HOST": "h", "SWITCHYARD_DRAIN_TIMEOUT": "5"}, want: []string{`SWITCHYARD_DRAIN_TIMEOUT="5": want a duration such as 5s`}},
		{name: "env not a bool", env: map[string]string{"REDIS_HOST": "h", "SWITCHYARD_EVENT_LOOP": "no"}, want: []string{`SWITCHYARD_EVENT_LOOP="no": want true or false`}},
		{name: "log level zap has but docs do not", env: map[string]string{"REDIS_HOST": "h", "SWITCHYARD_LOG_LEVEL": "dpanic"}, want: []string{`log.level="dpanic": want debug, info, warn or error`}},
		{name: "file negative backend_tls reload", file: "groups:\n  - {name: a, listen: '127.0.0.1:1', upstream: 'x:1', backend_tls: {reload_interval: -1s}}\n", want: []string{"groups[0] (a).backend_tls.reload_interval=-1s: must not be negative"}},
		{name: "file negative sentinel.tls reload", file: "groups:\n  - {name: a, listen: '127.0.0.1:1', sentinel: {master_name: m, addrs: ['s:1'], tls: {reload_interval: -5s}}}\n", want: []string{"groups[0] (a).sentinel.tls.reload_interval=-5s: must not be negative"}},
		{name: "file negative poll", file: "groups:\n  - {name: g, listen: '127.0.0.1:1', sentinel: {master_name: m, addrs: ['s:1'], poll_interval: -1s}}\n", want: []string{"groups[0] (g).sentinel.poll_interval=-1s: must not be negative"}},
		{name: "file duration without unit", file: "groups:\n  - name: a\n    listen: 127.0.0.1:1\n    upstream: x:1\n    hold_timeout: 2\n", want: []string{"line 5: hold_timeout=2: want a duration such as 5s"}},
		{name: "file flow style wrong types", file: "groups:\n  - {name: a, listen: '127.0.0.1:1', upstream: 'x:1', client_output_limit: 1MiB, event_loop: maybe, io_uring: sometimes}\n", want: []string{"client_output_limit=1MiB: want a whole number", "event_loop=maybe: want true or false", "io_uring=sometimes: want true or false"}},
		{name: "bad log format", env: map[string]string{"REDIS_HOST": "h", "SWITCHYARD_LOG_FORMAT": "xml"}, want: []string{"log.format", "xml", "json or console"}},
		{name: "file unknown field", file: "groups:\n  - name: a\n    listen: 127.0.0.1:1\n    upstrem: x:1\n", want: []string{"upstrem"}},
		{name: "file both upstreams", file: "groups:\n  - name: a\n    listen: 127.0.0.1:1\n    upstream: x:1\n    sentinel: {master_name: m, addrs: [s:1]}\n", want: []string{"groups[0] (a)", "not both"}},
		{name: "file duplicate listen", file: "groups:\n  - {name: a, listen: '127.0.0.1:1', upstream: 'x:1'}\n  - {name: b, listen: '127.0.0.1:1', upstream: 'x:1'}\n", want: []string{"groups[1] (b).listen", "already used by group \"a\""}},
		{name: "file pool size", file: "groups:\n  - {name: a, listen: '127.0.0.1:1', upstream: 'x:1', pool_size: 100}\n", want: []string{"pool_size=100", "1-64"}},
		{name: "file output limit", file: "groups:\n  - {name: a, listen: '127.0.0.1:1', upstream: 'x:1', client_output_limit: -2}\n", want: []string{"client_output_limit=-2", "-1 for no limit"}},
		{name: "file no groups", file: "admin_listen: 127.0.0.1:9\n", want: []string{"at least one group"}},
		{name: "file sentinel without addrs", file: "groups:\n  - {name: a, listen: '127.0.0.1:1', sentinel: {master_name: m}}\n", want: []string{"sentinel.addrs is empty"}},
		// What sentinel.New refuses is refused here too, by its YAML name,
		// so that check-config and a reload catch it (found by an audit:
		// check-config said OK and serve then exited).
		{name: "file sentinel listed twice", file: "groups:\n  - {name: a, listen: '127.0.0.1:1', sentinel: {master_name: m, addrs: ['s:1', 't:1', 's:1']}}\n", want: []string{`groups[0] (a).sentinel.addrs[2]="s:1": listed twice`}},
		{name: "file sentinel without host", file: "groups:\n  - {name: a, listen: '127.0.0.1:1', sentinel: {master_name: m, addrs: [':26379']}}\n", want: []string{`groups[0] (a).sentinel.addrs[0]=":26379": want host:port, with a host`}},
		{name: "file too many sentinels", file: "groups:\n  - {name: a, listen: '127.0.0.1:1', sentinel: {master_name: m, addrs: [" + manySentinels(33) + "]}}\n", want: []string{"groups[0] (a).sentinel.addrs: 33 addresses, at most 32"}},
		{name: "env sentinel listed twice", env: map[string]string{"REDIS_SENTINEL_HOSTS": "s:1,s:1", "REDIS_SENTINEL_MASTER": "m"}, want: []string{`sentinel.addrs[1]="s:1": listed twice`}},
		{name: "file mTLS without a CA", file: "groups:\n  - {name: a, listen: '127.0.0.1:1', upstream: 'x:1', tls: {listen: '127.0.0.1:2', cert_file: c, key_file: k, client_auth: require}}\n", want: []string{`groups[0] (a).tls.client_auth="require" needs client_ca_file`}},
		{name: "file CA without mTLS", file: "groups:\n  - {name: a, listen: '127.0.0.1:1', upstream: 'x:1', tls: {listen: '127.0.0.1:2', cert_file: c, key_file: k, client_ca_file: ca}}\n", want: []string{`groups[0] (a).tls.client_ca_file="ca" is set but client_auth is none`}},
		{name: "file facade mTLS without a CA", file: "sentinel_facade: {tls: {listen: '127.0.0.1:3', cert_file: c, key_file: k, client_auth: optional}}\ngroups:\n  - {name: a, listen: '127.0.0.1:1', upstream: 'x:1', facade_name: a}\n", want: []string{`sentinel_facade.tls.client_auth="optional" needs client_ca_file`}},
		// TLS files are loaded with the configuration: a reload naming a
		// missing one changes nothing, and check-config says so.
		{name: "file missing certificate", file: "groups:\n  - {name: a, listen: '127.0.0.1:1', upstream: 'x:1', tls: {listen: '127.0.0.1:2', cert_file: /nonexistent/tls.crt, key_file: /nonexistent/tls.key}}\n", want: []string{"groups[0] (a).tls", "/nonexistent/tls.crt"}},
		{name: "file missing backend CA", file: "groups:\n  - {name: a, listen: '127.0.0.1:1', upstream: 'x:1', backend_tls: {ca_file: /nonexistent/ca.crt}}\n", want: []string{"groups[0] (a).backend_tls", "/nonexistent/ca.crt"}},
		{name: "file missing sentinel CA", file: "groups:\n  - {name: a, listen: '127.0.0.1:1', sentinel: {master_name: m, addrs: ['s:1'], tls: {ca_file: /nonexistent/sca.crt}}}\n", want: []string{"groups[0] (a).sentinel.tls", "/nonexistent/sca.crt"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			setEnv(t, tt.env)
			loadFails(t, tt.file, tt.want)
		})
	}
}

func TestExampleConfigIsValid(t *testing.T) {
	setEnv(t, nil)
	c, err := loadConfig("../../deploy/switchyard.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Groups) != 2 || c.Groups[0].Listen != "0.0.0.0:6379" || c.Groups[1].Listen != "0.0.0.0:6380" {
		t.Fatalf("example groups: %+v", c.Groups)
	}
	if c.Groups[0].Sentinel.MasterName != "platform-kv-master" || c.Groups[1].Sentinel.MasterName != "cache-kv-master" {
		t.Fatal("example master names")
	}
}

func TestCredentials(t *testing.T) {
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "pw")
	os.WriteFile(pwFile, []byte("from-file\n"), 0o600)

	t.Run("env with files", func(t *testing.T) {
		setEnv(t, map[string]string{
			"REDIS_SENTINEL_HOSTS": "s:26379", "REDIS_SENTINEL_MASTER": "m",
			"REDIS_PASSWORD_FILE": pwFile, "REDIS_SENTINEL_PASSWORD": "sentinel-pw", "REDIS_USERNAME": "app",
		})
		c, err := loadConfig("")
		if err != nil {
			t.Fatal(err)
		}
		g := c.Groups[0]
		if g.Auth.Password != "from-file" || g.Auth.Username != "app" || g.Sentinel.Auth.Password != "sentinel-pw" {
			t.Fatalf("auth %+v sentinel auth %+v", g.Auth, g.Sentinel.Auth)
		}
	})
	t.Run("file both password and file", func(t *testing.T) {
		setEnv(t, nil)
		path := filepath.Join(dir, "c.yaml")
		os.WriteFile(path, []byte("groups:\n  - {name: a, listen: '127.0.0.1:1', upstream: 'x:1', auth: {password: p, password_file: '"+pwFile+"'}}\n"), 0o600)
		_, err := loadConfig(path)
		if err == nil || !strings.Contains(err.Error(), "groups[0] (a).auth: set password or password_file, not both") {
			t.Fatalf("err = %v", err)
		}
	})
	// A password that guards clients cannot be empty: AUTH ghost "" would
	// let anyone in, and an empty default password would turn
	// authentication off. Found by an audit: both loaded as valid.
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, []byte("\n"), 0o600)
	for _, tc := range []struct{ name, yaml, want string }{
		{"user without password", "groups:\n  - {name: a, listen: '127.0.0.1:1', upstream: 'x:1', client_auth: {users: [{name: ghost}]}}\n",
			"groups[0] (a).client_auth.users[0] (ghost): give a password or a password_file"},
		{"user with an empty password file", "groups:\n  - {name: a, listen: '127.0.0.1:1', upstream: 'x:1', client_auth: {users: [{name: u, password_file: '" + empty + "'}]}}\n",
			"groups[0] (a).client_auth.users[0] (u).password_file \"" + empty + "\" is empty"},
		{"empty client password file", "groups:\n  - {name: a, listen: '127.0.0.1:1', upstream: 'x:1', client_auth: {password_file: '" + empty + "'}}\n",
			"groups[0] (a).client_auth.password_file \"" + empty + "\" is empty"},
		{"empty facade password file", "sentinel_facade: {listen: '127.0.0.1:2', password_file: '" + empty + "'}\ngroups:\n  - {name: a, listen: '127.0.0.1:1', upstream: 'x:1', facade_name: a}\n",
			"sentinel_facade.password_file \"" + empty + "\" is empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			setEnv(t, nil)
			path := filepath.Join(dir, "c.yaml")
			os.WriteFile(path, []byte(tc.yaml), 0o600)
			if _, err := loadConfig(path); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
	t.Run("empty client password file in the environment", func(t *testing.T) {
		setEnv(t, map[string]string{"REDIS_HOST": "h", "SWITCHYARD_PASSWORD_FILE": empty})
		if _, err := loadConfig(""); err == nil || !strings.Contains(err.Error(), "is empty") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("an empty password never authenticates", func(t *testing.T) {
		ok := (&clientAuth{Users: []clientUser{{Name: "ghost"}}}).authenticator()
		if ok("ghost", "") {
			t.Fatal(`AUTH ghost "" accepted`)
		}
	})
	t.Run("missing password file", func(t *testing.T) {
		setEnv(t, map[string]string{"REDIS_HOST": "h", "REDIS_PASSWORD_FILE": filepath.Join(dir, "nope")})
		_, err := loadConfig("")
		if err == nil || !strings.Contains(err.Error(), "password_file") {
			t.Fatalf("err = %v", err)
		}
	})
	// With a file only the variables marked † apply; a malformed one of
	// the others (left in a pod's environment, say) is not read, while a
	// malformed † one is still an error.
	t.Run("file ignores the sidecar variables", func(t *testing.T) {
		path := filepath.Join(dir, "c.yaml")
		os.WriteFile(path, []byte("groups:\n  - {name: a, listen: '127.0.0.1:1', upstream: 'x:1'}\n"), 0o600)
		setEnv(t, map[string]string{"REDIS_PORT": "abc", "REDIS_SOCKET_TIMEOUT": "0.1s", "SWITCHYARD_EVENT_LOOP": "no"})
		if _, err := loadConfig(path); err != nil {
			t.Fatalf("file with malformed sidecar variables: %v", err)
		}
		setEnv(t, map[string]string{"SWITCHYARD_DRAIN_TIMEOUT": "5"})
		if _, err := loadConfig(path); err == nil || !strings.Contains(err.Error(), `SWITCHYARD_DRAIN_TIMEOUT="5": want a duration`) {
			t.Fatalf("file with a malformed global variable: %v", err)
		}
	})
	t.Run("sentinel password without sentinels", func(t *testing.T) {
		setEnv(t, map[string]string{"REDIS_HOST": "h", "REDIS_SENTINEL_PASSWORD": "x"})
		if _, err := loadConfig(""); err == nil || !strings.Contains(err.Error(), "REDIS_SENTINEL_HOSTS") {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestEnvOverridesFile(t *testing.T) {
	setEnv(t, map[string]string{"SWITCHYARD_LOG_LEVEL": "debug", "SWITCHYARD_ADMIN_LISTEN": "127.0.0.1:9999", "SWITCHYARD_DRAIN_TIMEOUT": "3s"})
	path := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(path, []byte("admin_listen: 0.0.0.0:9190\ndrain_timeout: 20s\nlog: {level: warn}\ngroups:\n  - {name: a, listen: '127.0.0.1:1', upstream: 'x:1'}\n"), 0o600)
	c, err := loadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	if c.Log.Level != "debug" || c.AdminListen != "127.0.0.1:9999" || c.DrainTimeout != 3*time.Second {
		t.Fatalf("environment did not override the file: %+v", c)
	}
}

// loadFails loads the configuration from file (if given) and the
// environment, and checks that it is refused with an error mentioning
// every string in want.
func loadFails(t *testing.T, file string, want []string) {
	t.Helper()
	path := ""
	if file != "" {
		path = filepath.Join(t.TempDir(), "c.yaml")
		os.WriteFile(path, []byte(file), 0o600)
	}
	_, err := loadConfig(path)
	if err == nil {
		t.Fatal("no error")
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not mention %q", err, w)
		}
	}
}

// manySentinels lists n distinct Sentinel addresses for a YAML flow list.
func manySentinels(n int) string {
	var a []string
	for i := range n {
		a = append(a, "'s"+strconv.Itoa(i)+":26379'")
	}
	return strings.Join(a, ", ")
}
