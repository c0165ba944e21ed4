package deploy

import (
	"path/filepath"
	"testing"

	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/lint"
	"helm.sh/helm/v3/pkg/lint/support"
)

// TestHelmLint runs `helm lint`'s rules on the chart with each
// environment's values: what a chart author would run before a release.
func TestHelmLint(t *testing.T) {
	kv, err := chartutil.ParseKubeVersion(KubeVersion)
	if err != nil {
		t.Fatal(err)
	}
	for _, env := range Environments {
		t.Run(env.Name, func(t *testing.T) {
			vals := map[string]any{}
			for _, f := range env.ValuesFiles {
				v, err := chartutil.ReadValuesFile(filepath.Join(ChartDir, f))
				if err != nil {
					t.Fatal(err)
				}
				vals = chartutil.CoalesceTables(v.AsMap(), vals)
			}
			l := lint.AllWithKubeVersion(ChartDir, vals, Release.Namespace, kv)
			for _, m := range l.Messages {
				if m.Severity >= support.WarningSev {
					t.Error(m.Error())
				} else {
					t.Log(m.Error())
				}
			}
		})
	}
}
