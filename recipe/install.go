package recipe

// installMethods are the package-installer steps (pip, uv, poetry,
// micromamba), added to the method table by init.
func installMethods() map[string]method {
	return map[string]method{}
}
