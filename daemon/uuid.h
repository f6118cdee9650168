/* UUIDs version 7 (RFC 9562): time-ordered ids for ops and records. */
#ifndef UUID_H
#define UUID_H

#define UUID_STRLEN	36

/* Write a new UUIDv7 for the daemon clock's now into out (37 bytes). */
void	uuid7(char out[UUID_STRLEN + 1]);
/* 1 when s is a UUID in canonical text form (any version, lowercase or
 * uppercase hex). */
int	uuid_valid(const char *s);

#endif
