package snapbuild

import (
	"reflect"
	"testing"
)

func TestPlanCopy(t *testing.T) {
	files := []contextFile{
		{path: ".requirements.txt"},
		{path: "app/main.py"},
		{path: "app/pkg/util.py"},
		{path: "data/a.csv"},
		{path: "data/b.csv"},
		{path: "opt/tool/bin"},
	}
	for _, tc := range []struct {
		srcs []string
		dest string
		want map[string]string // dest -> context path
		err  string
	}{
		{[]string{"/.requirements.txt"}, "/.requirements.txt", map[string]string{"/.requirements.txt": ".requirements.txt"}, ""},
		{[]string{".requirements.txt"}, "/tmp/", map[string]string{"/tmp/.requirements.txt": ".requirements.txt"}, ""},
		{[]string{"app"}, "/srv", map[string]string{"/srv/main.py": "app/main.py", "/srv/pkg/util.py": "app/pkg/util.py"}, ""},
		{[]string{"data/*.csv"}, "/d/", map[string]string{"/d/a.csv": "data/a.csv", "/d/b.csv": "data/b.csv"}, ""},
		{[]string{"app/main.py", "data/a.csv"}, "/x", map[string]string{"/x/main.py": "app/main.py", "/x/a.csv": "data/a.csv"}, ""},
		{[]string{"."}, "/", map[string]string{"/.requirements.txt": ".requirements.txt", "/app/main.py": "app/main.py",
			"/app/pkg/util.py": "app/pkg/util.py", "/data/a.csv": "data/a.csv", "/data/b.csv": "data/b.csv", "/opt/tool/bin": "opt/tool/bin"}, ""},
		{[]string{"ap"}, "/x", nil, `COPY source "ap": no such file or directory in the build context`},
		{[]string{"app/main.py", "nope"}, "/x/", nil, `COPY source "nope": no such file or directory in the build context`},
	} {
		items, err := planCopy(files, tc.srcs, tc.dest)
		if tc.err != "" {
			if err == nil || err.Error() != tc.err {
				t.Errorf("%v -> %s: err %v, want %q", tc.srcs, tc.dest, err, tc.err)
			}
			continue
		}
		got := map[string]string{}
		for _, it := range items {
			got[it.dest] = it.file.path
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%v -> %s = %v, %v; want %v", tc.srcs, tc.dest, got, err, tc.want)
		}
	}
}

func TestParseOwnership(t *testing.T) {
	root := t.TempDir()
	uWrite(t, root+"/etc", "passwd", "root:x:0:0::/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n", 0o644)
	uWrite(t, root+"/etc", "group", "root:x:0:\nstaff:x:50:\n", 0o644)
	for _, tc := range []struct {
		chown, chmod string
		want         ownership
		err          bool
	}{
		{"", "", ownership{uid: -1, gid: -1}, false},
		{"app", "", ownership{uid: 1000, gid: 1001}, false},
		{"app:staff", "", ownership{uid: 1000, gid: 50}, false},
		{"42:43", "", ownership{uid: 42, gid: 43}, false},
		{"", "0755", ownership{uid: -1, gid: -1, mode: 0o755, setMode: true}, false},
		{"nobody-here", "", ownership{}, true},
		{"", "999", ownership{}, true},
	} {
		got, err := parseOwnership(root, tc.chown, tc.chmod)
		if (err != nil) != tc.err || (!tc.err && got != tc.want) {
			t.Errorf("chown=%q chmod=%q: %+v, %v; want %+v (err %v)", tc.chown, tc.chmod, got, err, tc.want, tc.err)
		}
	}
}
