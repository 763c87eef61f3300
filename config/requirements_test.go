package config

import (
	"errors"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseRequirementsAccepts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		line string
		want Requirement
		str  string
	}{
		{line: "requests", want: Requirement{Name: "requests"}, str: "requests"},
		{line: "Requests_OAuthlib.Extra", want: Requirement{Name: "requests-oauthlib-extra"}, str: "requests-oauthlib-extra"},
		{line: "requests>=2.31", want: Requirement{Name: "requests", Specifier: ">=2.31"}, str: "requests>=2.31"},
		{line: "requests >= 2.31 , < 3", want: Requirement{Name: "requests", Specifier: ">=2.31,<3"}, str: "requests>=2.31,<3"},
		{line: "requests (>=2.31,<3)", want: Requirement{Name: "requests", Specifier: ">=2.31,<3"}, str: "requests>=2.31,<3"},
		{line: "requests[socks, security] ~= 2.31", want: Requirement{Name: "requests", Extras: []string{"socks", "security"}, Specifier: "~=2.31"}, str: "requests[socks,security]~=2.31"},
		{line: "foo[]", want: Requirement{Name: "foo"}, str: "foo"},
		{line: "django==4.2.*", want: Requirement{Name: "django", Specifier: "==4.2.*"}, str: "django==4.2.*"},
		{line: "django!=1.*", want: Requirement{Name: "django", Specifier: "!=1.*"}, str: "django!=1.*"},
		{line: "torch==2.1.0+cpu", want: Requirement{Name: "torch", Specifier: "==2.1.0+cpu"}, str: "torch==2.1.0+cpu"},
		{line: "foo===weird-1", want: Requirement{Name: "foo", Specifier: "===weird-1"}, str: "foo===weird-1"},
		{line: "foo>=1.0rc1,!=1.0.post2,<2.0.dev3", want: Requirement{Name: "foo", Specifier: ">=1.0rc1,!=1.0.post2,<2.0.dev3"}, str: "foo>=1.0rc1,!=1.0.post2,<2.0.dev3"},
		{line: "foo==1!2.0", want: Requirement{Name: "foo", Specifier: "==1!2.0"}, str: "foo==1!2.0"},
		{line: `tzdata ; sys_platform == "win32"`, want: Requirement{Name: "tzdata", Marker: `sys_platform == "win32"`}, str: `tzdata; sys_platform == "win32"`},
		{line: `foo;python_version<'3.8'`, want: Requirement{Name: "foo", Marker: `python_version < '3.8'`}, str: `foo; python_version < '3.8'`},
		{
			line: `foo>=1 ; (python_version >= "3.8" or os_name=="nt") and "linux" in sys_platform and platform_machine not  in "arm64 aarch64"`,
			want: Requirement{Name: "foo", Specifier: ">=1", Marker: `(python_version >= "3.8" or os_name == "nt") and "linux" in sys_platform and platform_machine not in "arm64 aarch64"`},
			str:  `foo>=1; (python_version >= "3.8" or os_name == "nt") and "linux" in sys_platform and platform_machine not in "arm64 aarch64"`,
		},
		{line: `foo ; extra == "test"`, want: Requirement{Name: "foo", Marker: `extra == "test"`}, str: `foo; extra == "test"`},
		{line: "requests>=2.31   # needed for http", want: Requirement{Name: "requests", Specifier: ">=2.31"}, str: "requests>=2.31"},
		{line: "a", want: Requirement{Name: "a"}, str: "a"},
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			t.Parallel()
			reqs, err := ParseRequirements("r.txt", strings.NewReader("# header\n\n"+tt.line+"\n"))
			require.NoError(t, err)
			require.Len(t, reqs, 1)
			got := reqs[0]
			assert.Equal(t, "r.txt", got.Source)
			assert.Equal(t, 3, got.Line)
			assert.Equal(t, tt.want.Name, got.Name)
			assert.Equal(t, tt.want.Extras, got.Extras)
			assert.Equal(t, tt.want.Specifier, got.Specifier)
			assert.Equal(t, tt.want.Marker, got.Marker)
			assert.Equal(t, tt.str, got.String())
			// The canonical rendering parses back to the same requirement.
			again, err := ParseRequirements("again", strings.NewReader(got.String()))
			require.NoError(t, err)
			assert.Equal(t, got.String(), again[0].String())
		})
	}
}

func TestParseRequirementsRejects(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		line string
		want string // substring of the error message, after "r.txt:2: "
	}{
		{"index-url short", "-i https://evil.example/simple", "pip option -i is not allowed"},
		{"index-url long", "--index-url=https://evil.example/simple", "pip option --index-url is not allowed"},
		{"extra-index-url", "--extra-index-url https://evil.example/simple", "pip option --extra-index-url is not allowed"},
		{"find-links short", "-f ./wheels", "pip option -f is not allowed"},
		{"find-links long", "--find-links=/tmp", "pip option --find-links is not allowed"},
		{"trusted-host", "--trusted-host evil.example", "pip option --trusted-host is not allowed"},
		{"no-index", "--no-index", "pip option --no-index is not allowed"},
		{"nested requirement", "-r other.txt", "nested requirement and constraint files are not supported"},
		{"constraint", "-c constraints.txt", "nested requirement and constraint files are not supported"},
		{"editable", "-e .", "editable installs are not supported"},
		{"editable long", "--editable git+https://x/y", "editable installs are not supported"},
		{"other option", "--pre", "pip option --pre is not allowed"},
		{"hash", "--hash=sha256:abcd", "pip option --hash is not allowed"},
		{"per-requirement hash", "requests==2.31.0 --hash=sha256:abcd", "per-requirement pip option --hash is not allowed"},
		{"per-requirement option", "requests==2.31.0 --config-settings=x=y", "per-requirement pip option --config-settings is not allowed"},
		{"url", "https://files.example/requests-2.31.0-py3-none-any.whl", "URLs are not allowed"},
		{"vcs url", "git+https://github.com/psf/requests", "URLs are not allowed"},
		{"direct reference url", "requests @ https://files.example/requests.whl", "URLs are not allowed"},
		{"direct reference", "requests @ requests.whl", "direct references (name @ url) are not allowed"},
		{"direct reference no space", "requests@file", "direct references (name @ url) are not allowed"},
		{"relative path", "./pkg", "local paths are not allowed"},
		{"parent path", "../pkg", "local paths are not allowed"},
		{"absolute path", "/srv/pkg", "local paths are not allowed"},
		{"home path", "~/pkg", "local paths are not allowed"},
		{"windows path", `C:\pkg`, "local paths are not allowed"},
		{"dir path", "pkgs/foo", "local paths are not allowed"},
		{"wheel", "requests-2.31.0-py3-none-any.whl", "local archive files (.whl) are not allowed"},
		{"sdist", "requests-2.31.0.tar.gz", "local archive files (.tar.gz) are not allowed"},
		{"zip", "foo.zip", "local archive files (.zip) are not allowed"},
		{"continuation", `requests>=2 \`, "line continuations"},
		{"continuation hiding option", `requests \`, "line continuations"},
		{"env var braces", "requests==${VERSION}", "environment variables"},
		{"env var plain", "$PKG", "environment variables"},
		{"dollar", "foo==$1", "'$' is not allowed"},
		{"control char", "requests\x00", "control character U+0000"},
		{"escape", "requests\x1b[2K", "control character U+001B"},
		{"del", "requests\x7f", "control character U+007F"},
		{"bare cr", "requests\rflask", "control character U+000D"},
		{"invalid utf8", "requests\xff", "not valid UTF-8"},
		{"bad name", "-foo", "pip option -foo is not allowed"},
		{"name trailing dash", "foo-", "invalid project name"},
		{"name start", "_foo", "invalid project name"},
		{"no name", ">=1.0", "expected a project name"},
		{"bad operator", "foo=1.0", "expected a version operator"},
		{"bad operator 2", "foo=>1.0", "expected a version operator"},
		{"missing version", "foo>=", "missing version after \">=\""},
		{"missing version after comma", "foo>=1,", "expected a version operator"},
		{"bad version", "foo>=1.0.x", "not a PEP 440 version"},
		{"wildcard with >=", "foo>=1.*", "only allowed with == and !="},
		{"wildcard local", "foo==1.0+local.*", "invalid version wildcard"},
		{"bare wildcard", "foo==*", "not a PEP 440 version"},
		{"local with >=", "foo>=1.0+cpu", "local version \">=1.0+cpu\" is only allowed with == and !="},
		{"compatible single", "foo~=1", "needs at least two release components"},
		{"unclosed paren", "foo (>=1", "expected ')'"},
		{"unclosed extras", "foo[bar", "expected ',' or ']'"},
		{"bad extra", "foo[-x]", "invalid extra name"},
		{"junk after", "foo bar", "unexpected \"bar\" after the requirement"},
		{"two names", "foo>=1 bar", "unexpected \"bar\""},
		{"empty marker", "foo;", "empty marker"},
		{"unknown marker var", `foo; python == "3"`, "unknown marker variable \"python\""},
		{"marker unterminated", `foo; python_version == "3`, "unterminated string"},
		{"marker no op", `foo; python_version "3"`, "expected a comparison operator"},
		{"marker dangling and", `foo; python_version == "3" and`, "marker ends early"},
		{"marker not without in", `foo; os_name not "nt"`, "expected 'in' after 'not'"},
		{"marker unclosed paren", `foo; (os_name == "nt"`, "expected ')' in marker"},
		{"marker extra paren", `foo; os_name == "nt")`, "unexpected \")\" in marker"},
		{"marker bad char", `foo; os_name == "nt" && os_name == "x"`, "unexpected \"&& os_name"},
		{"marker comment cut", `foo; os_name == " #x"`, "unterminated string"},
		{"marker string hiding an option", `foo; "a" != " --pre"`, `pip would read it as the option "--pre"`},
		{"marker string hiding an index", `foo; os_name != 'x -i evil'`, `pip would read it as the option "-i"`},
		{"cyrillic a echoed escaped", "fl\u0430sk", `unexpected "\u0430sk" after the requirement`},
		{"kelvin sign echoed escaped", "\u212aeras", `expected a project name, found "\u212aeras"`},
		{"marker nesting", "foo; " + strings.Repeat("(", 40) + `os_name == "nt"` + strings.Repeat(")", 40), "deeper than 32"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			reqs, err := ParseRequirements("r.txt", strings.NewReader("ok==1\n"+tt.line+"\n"))
			require.Error(t, err, "parsed as %v", reqs)
			assert.True(t, errdefs.IsInvalidArgument(err), "not an invalid argument: %v", err)
			assert.Contains(t, err.Error(), "r.txt:2: ")
			assert.Contains(t, err.Error(), tt.want)
			var ce *Error
			require.True(t, errors.As(err, &ce))
			assert.Equal(t, "r.txt", ce.Source)
			assert.Equal(t, 2, ce.Line)
		})
	}
}

func TestParseRequirementsFile(t *testing.T) {
	t.Parallel()
	in := "\ufeff# comment\r\nrequests>=2.31 \r\n\r\n   # indented comment \\\r\nflask#not-a-comment-start\r\n"
	_, err := ParseRequirements("r.txt", strings.NewReader(in))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "r.txt:5: ")

	reqs, err := ParseRequirements("r.txt", strings.NewReader("\ufeff# comment \\\r\nrequests>=2.31 \r\n\tflask\t# web\r\n"))
	require.NoError(t, err)
	require.Len(t, reqs, 2)
	assert.Equal(t, Requirement{Source: "r.txt", Line: 2, Raw: "requests>=2.31", Name: "requests", Specifier: ">=2.31"}, reqs[0])
	assert.Equal(t, Requirement{Source: "r.txt", Line: 3, Raw: "flask", Name: "flask"}, reqs[1])

	reqs, err = ParseRequirements("empty", strings.NewReader("# nothing\n\n"))
	require.NoError(t, err)
	assert.Empty(t, reqs)
}

func TestParseRequirementsDuplicates(t *testing.T) {
	t.Parallel()
	_, err := ParseRequirements("r.txt", strings.NewReader("requests>=2\nflask\nREQUESTS<3\n"))
	require.Error(t, err)
	assert.True(t, errdefs.IsInvalidArgument(err))
	assert.Contains(t, err.Error(), `r.txt:3: "REQUESTS<3": project "requests" is already required at r.txt:1`)
}

func TestParseRequirementsCapsDuplicateErrors(t *testing.T) {
	t.Parallel()
	_, err := ParseRequirements("r.txt", strings.NewReader(strings.Repeat("requests\n", 10000)))
	require.Error(t, err)
	assert.Equal(t, maxLineErrors, strings.Count(err.Error(), "is already required"))
	assert.Contains(t, err.Error(), "too many errors; stopped")

	args := make([]string, 10000)
	for i := range args {
		args[i] = "./bad"
	}
	_, err = ParseRequirementArgs(args)
	require.Error(t, err)
	assert.Equal(t, maxLineErrors, strings.Count(err.Error(), "local paths are not allowed"))
	assert.Contains(t, err.Error(), "too many errors; stopped")
}

func TestQuoteEscapesLookAlikes(t *testing.T) {
	t.Parallel()
	assert.Equal(t, `"fl\u0430sk"`, quote("fl\u0430sk"), "Cyrillic a")
	assert.Equal(t, `"\u212a"`, quote("\u212a"), "Kelvin sign")
	assert.Equal(t, `"a\x00b"`, quote("a\x00b"))
	assert.Equal(t, `"plain"`, quote("plain"))
}

func TestParseRequirementsReportsEveryLine(t *testing.T) {
	t.Parallel()
	_, err := ParseRequirements("r.txt", strings.NewReader("-i x\nok\n./y\n"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "r.txt:1: ")
	assert.Contains(t, err.Error(), "r.txt:3: ")
	assert.NotContains(t, err.Error(), "r.txt:2")
}

func TestParseRequirementsRedactsCredentials(t *testing.T) {
	t.Parallel()
	_, err := ParseRequirements("r.txt", strings.NewReader("--extra-index-url https://user:s3cret@idx.example/simple\n"))
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "s3cret")
}

func TestParseRequirementArgs(t *testing.T) {
	t.Parallel()
	reqs, err := ParseRequirementArgs([]string{"requests>=2", `tzdata; os_name == "nt"`})
	require.NoError(t, err)
	require.Len(t, reqs, 2)
	assert.Equal(t, "args", reqs[0].Source)
	assert.Equal(t, 0, reqs[0].Line)

	tests := []struct {
		args []string
		want string
	}{
		{[]string{"ok", "--index-url=https://x/simple"}, "args: argument 2: \"--index-url=https://x/simple\": pip option --index-url is not allowed"},
		{[]string{"ok\n-i https://x"}, "args: argument 1 \"ok\\n-i https://x\": one requirement per argument"},
		{[]string{""}, "args: argument 1: empty requirement"},
		{[]string{"a", "A"}, "project \"a\" is already required at args \"a\""},
	}
	for _, tt := range tests {
		_, err := ParseRequirementArgs(tt.args)
		require.Error(t, err, "%q", tt.args)
		assert.True(t, errdefs.IsInvalidArgument(err))
		assert.Contains(t, err.Error(), tt.want)
	}
}

func TestParsePins(t *testing.T) {
	t.Parallel()
	pins, err := ParsePins("pins", strings.NewReader("# frozen\nRequests==2.31.0\nurllib3 == 2.0.7\n"))
	require.NoError(t, err)
	assert.Equal(t, []Pin{
		{Name: "requests", Version: "2.31.0", Source: "pins", Line: 2},
		{Name: "urllib3", Version: "2.0.7", Source: "pins", Line: 3},
	}, pins)

	tests := []struct{ in, want string }{
		{"requests>=2", "pins:1: \"requests>=2\": expected an exact pin name==version"},
		{"requests==2.*", "expected an exact pin"},
		{"requests", "expected an exact pin"},
		{"requests==2,<3", "expected an exact pin"},
		{"requests==2\nrequests==3", "pins:2: \"requests==3\": \"requests\" is pinned twice (first at pins:1)"},
		{"requests @ file:///x.whl", "URLs are not allowed"},
		{"-e .", "editable installs"},
	}
	for _, tt := range tests {
		_, err := ParsePins("pins", strings.NewReader(tt.in))
		require.Error(t, err, tt.in)
		assert.True(t, errdefs.IsInvalidArgument(err))
		assert.Contains(t, err.Error(), tt.want)
	}
}

func FuzzParseRequirements(f *testing.F) {
	for _, s := range []string{
		"requests>=2.31\n", `foo[bar]~=1.2 ; python_version >= "3.8" and (os_name == 'nt' or extra == "x")`,
		"-i https://x\n", "a @ b", "foo (==1.*)", "x\\\ny", "${A}", "foo;", "# c\n\n", "foo==1!2.0+l.1",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		reqs, err := ParseRequirements("fuzz", strings.NewReader(in))
		if err != nil {
			if !errdefs.IsInvalidArgument(err) {
				t.Fatalf("error is not an invalid argument: %v", err)
			}
			return
		}
		for _, r := range reqs {
			// Whatever is accepted renders to a line that is accepted again
			// with the same meaning.
			again, err := ParseRequirements("again", strings.NewReader(r.String()))
			if err != nil {
				t.Fatalf("%q rendered as %q which fails: %v", r.Raw, r.String(), err)
			}
			if len(again) != 1 || again[0].String() != r.String() {
				t.Fatalf("%q rendered as %q reparses differently: %+v", r.Raw, r.String(), again)
			}
		}
	})
}
