/* SPDX-License-Identifier: BSD-3-Clause */
/* Stands in for <check.h> when configure did not find the Check library
 * (see configure.ac): the daemon builds without it, `make check` does not. */
#error "make check needs the Check unit test library: install the Debian package check (apt-get install check), then run configure again"
/* Stop here instead of a page of errors about the missing Check macros. */
#include "make-check-needs-the-Check-library.h"
