// Package indexproxy is the allow-list every network access of a build
// passes: an HTTP forward proxy served in skillbuild's own process and
// reached from a build step only through a BuildKit session socket. It
// admits the configured package index hosts (and the file hosts they link
// to), adds their credentials itself, and refuses everything else.
package indexproxy
