/*
 * unit.h: what every unit test includes: cmocka and its prerequisites, in the order cmocka
 * needs them.
 */
#ifndef COFRE_TEST_UNIT_H
#define COFRE_TEST_UNIT_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#endif
