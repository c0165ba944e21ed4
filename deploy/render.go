package deploy

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
)

// ChartDir is the chart, relative to the deploy module's root.
const ChartDir = "helm/switchyard"

// Release is the release the rendered manifests are for: the name and
// namespace the connection guide's services live in.
var Release = chartutil.ReleaseOptions{Name: "switchyard", Namespace: "platform", IsInstall: true}

// KubeVersion is the cluster version the chart is rendered for.
const KubeVersion = "v1.31.0"

// Environment is one way of installing the chart: its values files, in
// the order they are given to helm -f.
type Environment struct {
	Name        string
	ValuesFiles []string
	// Example environments are rendered and tested but not written to
	// rendered/.
	Example bool
}

// Environments are the connection guide's environments, plus TLS on top
// of production as an example.
var Environments = []Environment{
	{Name: "production", ValuesFiles: []string{"values-production.yaml"}},
	{Name: "staging", ValuesFiles: []string{"values-staging.yaml"}},
	{Name: "development", ValuesFiles: []string{"values-development.yaml"}},
	{Name: "tls-example", ValuesFiles: []string{"values-production.yaml", "values-tls-example.yaml"}, Example: true},
}

// Render renders the chart in dir (normally ChartDir) for env, as
// `helm template` would. It returns the non-empty manifests by file name
// (deployment.yaml, service.yaml, ...), NOTES.txt left out.
func Render(dir string, env Environment) (map[string]string, error) {
	chrt, err := loader.Load(dir)
	if err != nil {
		return nil, fmt.Errorf("deploy: load chart: %w", err)
	}
	caps := chartutil.DefaultCapabilities.Copy()
	kv, err := chartutil.ParseKubeVersion(KubeVersion)
	if err != nil {
		return nil, fmt.Errorf("deploy: %w", err)
	}
	caps.KubeVersion = *kv
	if c := chrt.Metadata.KubeVersion; c != "" && !chartutil.IsCompatibleRange(c, KubeVersion) {
		return nil, fmt.Errorf("deploy: chart wants Kubernetes %s, rendering for %s", c, KubeVersion)
	}
	vals := map[string]any{}
	for _, f := range env.ValuesFiles {
		v, err := chartutil.ReadValuesFile(filepath.Join(dir, f))
		if err != nil {
			return nil, fmt.Errorf("deploy: %s: %w", env.Name, err)
		}
		vals = chartutil.CoalesceTables(v.AsMap(), vals) // later files win, as with helm -f
	}
	top, err := chartutil.ToRenderValues(chrt, vals, Release, caps)
	if err != nil {
		return nil, fmt.Errorf("deploy: %s: %w", env.Name, err)
	}
	// Strict: a template that names a value nobody set is a bug.
	out, err := engine.Engine{Strict: true}.Render(chrt, top)
	if err != nil {
		return nil, fmt.Errorf("deploy: render %s: %w", env.Name, err)
	}
	files := map[string]string{}
	for name, text := range out {
		base := filepath.Base(name)
		if base == "NOTES.txt" || strings.HasPrefix(base, "_") || strings.TrimSpace(text) == "" {
			continue
		}
		files[base] = strings.TrimLeft(text, "\n")
	}
	return files, nil
}

// Header is written at the top of every file in rendered/.
func Header(env Environment, file string) string {
	return fmt.Sprintf("# Rendered from deploy/%s/templates/%s with %s\n"+
		"# (release %q, namespace %q). Do not edit: change the chart, then\n"+
		"#   cd deploy && go generate ./...\n",
		ChartDir, file, strings.Join(env.ValuesFiles, ", "), Release.Name, Release.Namespace)
}

// RenderedDir is where env's manifests are written, relative to the
// module's root.
func RenderedDir(env Environment) string { return filepath.Join("rendered", env.Name) }

// WriteRendered replaces rendered/<env>/ for every non-example
// environment with the chart's current output.
func WriteRendered(root string) error {
	for _, env := range Environments {
		if env.Example {
			continue
		}
		files, err := Render(filepath.Join(root, ChartDir), env)
		if err != nil {
			return err
		}
		dir := filepath.Join(root, RenderedDir(env))
		if err := os.RemoveAll(dir); err != nil {
			return fmt.Errorf("deploy: %w", err)
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("deploy: %w", err)
		}
		for _, name := range SortedKeys(files) {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(Header(env, name)+files[name]), 0o644); err != nil {
				return fmt.Errorf("deploy: %w", err)
			}
		}
	}
	return nil
}

// SortedKeys returns m's keys in order.
func SortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
