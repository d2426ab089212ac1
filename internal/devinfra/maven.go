package devinfra

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// mavenDependencyPlugin is pinned: an unpinned CLI goal resolves whatever is
// newest on Central at the time.
const mavenDependencyPlugin = "3.8.1"

// jarsManifest lists name, size and SHA-256 of every jar of an install; its
// presence marks a complete install.
const jarsManifest = "manifest.txt"

// mavenJars is a Java server's runtime classpath, resolved from Maven
// Central into <cache>/<name>/<version>/libs.
type mavenJars struct {
	name, version string
	// deps are groupId:artifactId:version coordinates.
	deps []string
	// mainJar must be among the resolved jars: a pom that resolved to
	// nothing useful is an error, not an install.
	mainJar string
}

// JarInstall is a Java server's classpath resolved into the cache (Kafka,
// ZooKeeper).
type JarInstall struct {
	// Dir is <cache>/<name>/<version>; Libs is Dir/libs, holding the jars.
	Dir, Libs string
	// Jars is the number of jars; Downloaded is false if the cache was reused.
	Jars       int
	Downloaded bool
}

func newJarInstall(dir string, jars int, downloaded bool) *JarInstall {
	return &JarInstall{Dir: dir, Libs: filepath.Join(dir, "libs"), Jars: jars, Downloaded: downloaded}
}

// Classpath is the java -cp value (Java expands the wildcard itself).
func (j *JarInstall) Classpath() string { return filepath.Join(j.Libs, "*") }

// installMavenJars resolves j once: the result is reused as long as every jar
// of its manifest is present with its size. The Maven repository Maven
// downloads into is also in the cache (not ~/.m2), so the cache directory
// holds everything that was downloaded. It returns the install directory,
// the number of jars and whether they were resolved by this call.
func installMavenJars(ctx context.Context, o *Options, j mavenJars) (dir string, jars int, resolved bool, err error) {
	root := filepath.Join(o.CacheDir, j.name)
	dir = filepath.Join(root, j.version)
	if n, err := checkJarsInstall(dir); err == nil {
		return dir, n, false, nil
	}
	unlock, err := lockFile(filepath.Join(root, ".lock"))
	if err != nil {
		return "", 0, false, err
	}
	defer unlock()
	// Another run may have installed it while this one waited for the lock.
	if n, err := checkJarsInstall(dir); err == nil {
		return dir, n, false, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		o.Log.Warn().Err(err).Str("server", j.name).Msg("cache is incomplete, resolving again")
	}

	start := time.Now()
	o.Log.Info().Str("server", j.name).Str("version", j.version).Str("dir", dir).Msg("resolving jars from maven central")
	tmp, err := os.MkdirTemp(root, "tmp-")
	if err != nil {
		return "", 0, false, fmt.Errorf("cannot create temp dir: %w", err)
	}
	defer os.RemoveAll(tmp)
	var deps strings.Builder
	for _, d := range j.deps {
		parts := strings.Split(d, ":")
		if len(parts) != 3 {
			return "", 0, false, fmt.Errorf("maven coordinate %q: want groupId:artifactId:version", d)
		}
		fmt.Fprintf(&deps, "    <dependency><groupId>%s</groupId><artifactId>%s</artifactId><version>%s</version></dependency>\n",
			xmlEscape(parts[0]), xmlEscape(parts[1]), xmlEscape(parts[2]))
	}
	pom := fmt.Sprintf(`<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>io.qoscope.devinfra</groupId>
  <artifactId>%s-classpath</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
%s  </dependencies>
  <build><pluginManagement><plugins>
    <plugin><groupId>org.apache.maven.plugins</groupId><artifactId>maven-dependency-plugin</artifactId><version>%s</version></plugin>
  </plugins></pluginManagement></build>
</project>
`, xmlEscape(j.name), deps.String(), mavenDependencyPlugin)
	if err := os.WriteFile(filepath.Join(tmp, "pom.xml"), []byte(pom), 0o644); err != nil {
		return "", 0, false, err
	}
	if _, err := runCaptured(ctx, tmp, o.Maven, "-q", "-B",
		"-Dmaven.repo.local="+filepath.Join(o.CacheDir, "maven-repository"),
		"dependency:copy-dependencies", "-DincludeScope=runtime", "-DoutputDirectory="+filepath.Join(tmp, "libs"),
	); err != nil {
		return "", 0, false, fmt.Errorf("cannot resolve %s from maven central: %w", j.deps[0], err)
	}
	n, err := writeJarsManifest(tmp, j.mainJar)
	if err != nil {
		return "", 0, false, err
	}
	if err := os.RemoveAll(dir); err != nil {
		return "", 0, false, err
	}
	if err := os.Chmod(tmp, 0o755); err != nil { // MkdirTemp makes it private
		return "", 0, false, err
	}
	if err := os.Rename(tmp, dir); err != nil {
		return "", 0, false, fmt.Errorf("cannot move %s into the cache: %w", j.name, err)
	}
	o.Log.Info().Str("server", j.name).Int("jars", n).Dur("took", time.Since(start)).Msg("jars resolved")
	return dir, n, true, nil
}

// writeJarsManifest records name, size and SHA-256 of every jar in dir/libs.
func writeJarsManifest(dir, mainJar string) (int, error) {
	entries, err := os.ReadDir(filepath.Join(dir, "libs"))
	if err != nil {
		return 0, fmt.Errorf("maven produced no libs: %w", err)
	}
	var b strings.Builder
	n, sawMain := 0, false
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".jar") {
			continue
		}
		sum, size, err := sha256File(filepath.Join(dir, "libs", e.Name()))
		if err != nil {
			return 0, err
		}
		fmt.Fprintf(&b, "%s %d %s\n", sum, size, e.Name())
		n++
		sawMain = sawMain || e.Name() == mainJar
	}
	if !sawMain {
		return 0, fmt.Errorf("maven did not produce %s", mainJar)
	}
	return n, os.WriteFile(filepath.Join(dir, jarsManifest), []byte(b.String()), 0o644)
}

// checkJarsInstall verifies that every jar of the manifest is present with
// its recorded size. Sizes, not hashes: this runs on every `infra up` and a
// torn or truncated copy changes the size.
func checkJarsInstall(dir string) (int, error) {
	f, err := os.Open(filepath.Join(dir, jarsManifest))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) != 3 {
			return 0, fmt.Errorf("%s: malformed line %q", jarsManifest, sc.Text())
		}
		size, err := strconv.ParseInt(fields[1], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s: malformed size in %q", jarsManifest, sc.Text())
		}
		st, err := os.Stat(filepath.Join(dir, "libs", fields[2]))
		if err != nil {
			return 0, fmt.Errorf("cached jar missing: %w", err)
		}
		if st.Size() != size {
			return 0, fmt.Errorf("cached jar %s has %d bytes, manifest says %d", fields[2], st.Size(), size)
		}
		n++
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	if n == 0 {
		return 0, fmt.Errorf("%s lists no jars", jarsManifest)
	}
	return n, nil
}
