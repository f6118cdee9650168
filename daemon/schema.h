/* The ordered schema migrations applied by store_open(). */
#ifndef SCHEMA_H
#define SCHEMA_H

extern const char *const schema_migrations[];

#endif
