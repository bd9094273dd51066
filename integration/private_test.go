package integration

import (
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

// gitHost serves the bare repository bare over git's "dumb" HTTP protocol on
// 127.0.0.1, only below prefix (a request elsewhere is a 404 and is
// counted as refused). It returns the base URL and the counters.
func gitHost(t *testing.T, bare, prefix string) (url string, served, refused *atomic.Int64) {
	t.Helper()
	served, refused = new(atomic.Int64), new(atomic.Int64)
	files := http.FileServer(http.Dir(bare))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rest, ok := strings.CutPrefix(r.URL.Path, prefix)
		if !ok {
			refused.Add(1)
			http.NotFound(w, r)
			return
		}
		served.Add(1)
		r.URL.Path = rest
		files.ServeHTTP(w, r)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String() + "/", served, refused
}

// TestPipInstallPrivateRepos runs Modal's exact pip_install_private_repos
// commands against a stand-in for github.com: git inside the step is
// pointed at a local HTTP git host by url.<base>.insteadOf (given, like the
// token, by a secret), so the URL pip clones still carries
// "snapuser:<token>@github.com/...". The host serves the repository only
// at that path, which proves the token reached git; the token must then be
// nowhere in the store or the build output.
func TestPipInstallPrivateRepos(t *testing.T) {
	requireRoot(t)
	requireTools(t, "mmdebstrap", "git", "grep")
	requireMirror(t)
	const token = "ghp-PRIVATE-t0ken-0815"
	dir := t.TempDir()

	// The private repository: a setuptools project, tagged v1.
	work := filepath.Join(dir, "work")
	os.MkdirAll(filepath.Join(work, "privpkg"), 0o755)
	os.WriteFile(filepath.Join(work, "setup.py"), []byte("from setuptools import setup\nsetup(name='privpkg', version='1.0', packages=['privpkg'])\n"), 0o644)
	os.WriteFile(filepath.Join(work, "privpkg", "__init__.py"), []byte("VALUE = 'private-ok'\n"), 0o644)
	bare := filepath.Join(dir, "privpkg.git")
	for _, args := range [][]string{
		{"-C", work, "init", "-q"},
		{"-C", work, "add", "."},
		{"-C", work, "-c", "user.name=Snap", "-c", "user.email=snap@example.com", "commit", "-q", "-m", "v1"},
		{"-C", work, "tag", "v1"},
		{"clone", "-q", "--bare", work, bare},
		{"-C", bare, "update-server-info"},
	} {
		if out, err := exec.Command("git", args...).CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	host, served, refused := gitHost(t, bare, "/snapuser:"+token+"@github.com/snaporg/privpkg")

	r := runner{t: t, root: rootDir}
	// Without GITHUB_TOKEN in its secrets, the step fails with Modal's message.
	noToken := writeRecipe(t, dir, "notoken.yaml", `
- debian_slim: {}
- pip_install_private_repos:
    repositories: [github.com/snaporg/privpkg@v1]
    git_user: snapuser
    secrets: [{from_dict: {OTHER: x}}]
`)
	res := r.run("", "build", noToken, "--progress", "plain")
	if res.code == 0 || !strings.Contains(res.stderr, "GITHUB_TOKEN env var not set by provided modal.Secret(s): Secret.from_dict([OTHER])") {
		t.Errorf("without GITHUB_TOKEN: exit %d\n%s", res.code, tail(res.stderr, 8))
	}

	recipe := writeRecipe(t, dir, "private.yaml", `
- debian_slim: {}
- pip_install_private_repos:
    repositories: [github.com/snaporg/privpkg@v1]
    git_user: snapuser
    extra_options: --no-build-isolation --no-index
    secrets:
      - from_dict:
          GITHUB_TOKEN: `+token+`
          GIT_CONFIG_COUNT: "1"
          GIT_CONFIG_KEY_0: url.`+host+`.insteadOf
          GIT_CONFIG_VALUE_0: "https://"
`)
	res = r.run("", "build", recipe, "--progress", "plain")
	if res.code != 0 {
		t.Fatalf("build: exit %d\n%s", res.code, tail(res.stderr, 30))
	}
	if served.Load() == 0 || refused.Load() != 0 {
		t.Errorf("git host: %d requests served with the token in the URL, %d refused", served.Load(), refused.Load())
	}
	if out := r.ok("run", "private", "python3", "-c", "import privpkg; print(privpkg.VALUE)"); out.stdout != "private-ok\n" {
		t.Errorf("privpkg: %q", out.stdout)
	}
	if strings.Contains(res.stdout+res.stderr, token) {
		t.Errorf("the token is in the build output:\n%s", res.stderr)
	}
	if !strings.Contains(res.stderr, `pip install "git+https://snapuser:$GITHUB_TOKEN@github.com/snaporg/privpkg@v1" --no-build-isolation --no-index`) {
		t.Errorf("the build output lacks Modal's command:\n%s", tail(res.stderr, 30))
	}
	out, err := exec.Command("grep", "-r", "-a", "-l", token, rootDir).CombinedOutput()
	if err == nil || len(out) > 0 {
		t.Errorf("the token is in the store:\n%s", out)
	}
}
