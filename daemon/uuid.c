/* UUIDv7 generation and syntax checks; see uuid.h. */

#include <sys/random.h>

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "clock.h"
#include "uuid.h"

/*
 * 48 bits of Unix milliseconds, then 74 random bits. Within one
 * millisecond the random part of successive ids is kept increasing (RFC
 * 9562 §6.2 method 2) so that ids sort in the order they were made.
 */
void
uuid7(char out[UUID_STRLEN + 1])
{
	static uint64_t	last_ms, hi, lo;	/* 12 + 62 random bits */
	uint64_t	ms = clock_now_ms(), buf[2];
	static const char	hex[] = "0123456789abcdef";
	uint8_t		b[16];
	int		i, o;

	if (ms != last_ms) {
		if (getrandom(buf, sizeof(buf), 0) != sizeof(buf)) {
			buf[0] ^= ms * 0x9e3779b97f4a7c15ULL;
			buf[1] ^= (uint64_t)(uintptr_t)&buf;
		}
		hi = buf[0] & 0xfff;
		lo = buf[1] & ((UINT64_C(1) << 61) - 1);	/* room to grow */
		last_ms = ms;
	} else if (++lo >> 62) {
		lo = 0;
		hi = (hi + 1) & 0xfff;
	}
	for (i = 0; i < 6; i++)
		b[i] = (uint8_t)(ms >> (40 - 8 * i));
	b[6] = (uint8_t)(0x70 | (hi >> 8));
	b[7] = (uint8_t)hi;
	b[8] = (uint8_t)(0x80 | ((lo >> 56) & 0x3f));
	for (i = 9; i < 16; i++)
		b[i] = (uint8_t)(lo >> (8 * (15 - i)));
	/* Hand-formatted: snprintf of 16 %02x cost more than the rest. */
	for (i = 0, o = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			out[o++] = '-';
		out[o++] = hex[b[i] >> 4];
		out[o++] = hex[b[i] & 0xf];
	}
	out[o] = '\0';
}

int
uuid_valid(const char *s)
{
	size_t	i;

	if (strlen(s) != UUID_STRLEN)
		return (0);
	for (i = 0; i < UUID_STRLEN; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i] != '-')
				return (0);
		} else if (!isxdigit((unsigned char)s[i]))
			return (0);
	}
	return (1);
}
