package frontend_test

import (
	"testing"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/snapbuild/snapbuild/frontend"
)

func TestImageNames(t *testing.T) {
	for _, c := range []struct{ app, stem, name, want string }{
		{"example-hello", "app", "image", "example-hello:image"},
		{"", "web_app", "image", "web_app:image"},
		{"", "pkg.sub.mod", "f", "pkg.sub.mod:f"},
		{"My App!", "x", "IMAGE", "my-app:IMAGE"},
		{"  ", "--", "image", "app:image"},
		{"a..b__c", "x", "app.f-2", "a-b-c:app.f-2"},
		{"im-age", "x", "image", "app-im-age:image"},
		{"x", "x", "ümage", "x:_mage"},
		{"x", "x", ".hidden", "x:_hidden"},
	} {
		got := frontend.ImageName(frontend.ProjectName(c.app, c.stem), c.name)
		if got != c.want {
			t.Errorf("ImageName(ProjectName(%q, %q), %q) = %q, want %q", c.app, c.stem, c.name, got, c.want)
		}
		if _, err := name.ParseReference(got); err != nil {
			t.Errorf("%q is not a valid reference: %v", got, err)
		}
	}
}
