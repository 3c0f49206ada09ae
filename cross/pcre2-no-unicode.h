/* Forced into every C file of the cross builds (cross/build.sh): PCRE2 without Unicode
 * support, which drops its Unicode tables (about 110 KiB). Ampere never compiles a pattern
 * in UTF or UCP mode, so its matching is the same. pcre2-sys defines SUPPORT_UNICODE on the
 * command line; a forced include is read after every -D and takes it back. Only PCRE2's
 * files define PCRE2_CODE_UNIT_WIDTH, so SQLite is untouched. */
#ifdef PCRE2_CODE_UNIT_WIDTH
#undef SUPPORT_UNICODE
#endif
