package frontend

import (
	"strings"
)

// Image names. A Modal file names its images by Python identifiers
// (`image`, a function's name), which repeat from project to project: 31 of
// 135 public Modal examples call their image `image`. Store-wide names are
// therefore qualified by the project: "<project>:<name>", a registry
// reference whose repository is the project and whose tag is the image's
// name in the file, e.g. "example-hello:image" for
//
//	app = modal.App("example-hello")
//	image = modal.Image.debian_slim()
//
// The project is the name of the file's modal.App (ImageMeta.App) and, for
// an App without a name, the file's stem or the module's dotted name.

// ProjectName is the project part of an image name: app when it is not
// empty, else stem, made a valid repository name (lower case; runs of
// characters other than [a-z0-9] become one "-", or the separator "." or
// "_" when the run is only that character; no separator at either end;
// "app" when nothing is left).
func ProjectName(app, stem string) string {
	src := app
	if strings.TrimSpace(src) == "" {
		src = stem
	}
	var b strings.Builder
	var sep string // a pending separator
	for _, r := range strings.ToLower(src) {
		switch {
		case r >= 'a' && r <= 'z' || r >= '0' && r <= '9':
			if sep != "" && b.Len() > 0 {
				b.WriteString(sep)
			}
			sep = ""
			b.WriteRune(r)
		case sep == "" && (r == '.' || r == '_' || r == '-'):
			sep = string(r)
		default:
			sep = "-"
		}
	}
	if b.Len() == 0 {
		return "app"
	}
	s := b.String()
	if strings.HasPrefix(s, "im-") {
		s = "app-" + s // "im-" starts image IDs
	}
	return s
}

// ImageName is the store-wide name of image name of project:
// "<project>:<tag>", the tag being name with characters outside
// [A-Za-z0-9_.-] replaced by "_", no leading "." or "-", at most 128
// characters (Docker's tag syntax).
func ImageName(project, name string) string {
	var b strings.Builder
	for i, r := range name {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' ||
			(i > 0 && (r == '.' || r == '-'))
		if !ok {
			r = '_'
		}
		b.WriteRune(r)
	}
	tag := b.String()
	if tag == "" {
		tag = "latest"
	}
	if len(tag) > 128 {
		tag = tag[:128]
	}
	return project + ":" + tag
}
