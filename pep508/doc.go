// Package pep508 parses dependency specifications (PEP 508: "name[extras]
// specifiers ; marker") and evaluates environment markers, the way pip's
// vendored packaging 21.3 does: the same grammar (requirements with an
// "@ url" are parsed but marked, for callers that do not handle them),
// the same rendering (Requirement.String is packaging's str(Requirement),
// which pip re-parses for every dependency), and the same marker
// semantics (a comparison is a version comparison when "op value" is a
// PEP 440 specifier, a string comparison otherwise).
//
// Anything packaging would treat through its legacy (non-PEP 440) code
// paths, or would fail on while evaluating, is an error here; callers
// leave such input to pip.
package pep508
