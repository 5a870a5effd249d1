/**
 * Preloaded into the sandbox's s3rver (`node --require`). s3rver 3.7.1 prunes its directory walk
 * below a common prefix before it has seen an object there, so a delimited listing loses every
 * prefix whose objects sit two levels down: pgBackRest lists `archive/<stanza>/` and gets no
 * `15-1/` — `pgbackrest verify` then checks no WAL ("archiveId: none found") and `expire` removes
 * none. This lists the prefix in full and folds the keys into their common prefixes, as S3 does.
 */
"use strict";
const FilesystemStore = require("s3rver/lib/stores/filesystem");

const listObjects = FilesystemStore.prototype.listObjects;

FilesystemStore.prototype.listObjects = async function listWithCommonPrefixes(bucket, options) {
  const { delimiter = "", prefix = "", maxKeys = Infinity } = options;
  if (!delimiter) return listObjects.call(this, bucket, options);
  const all = await listObjects.call(this, bucket, { ...options, delimiter: "", maxKeys: Infinity });
  const commonPrefixes = new Set();
  const objects = [];
  let isTruncated = false;
  for (const object of all.objects) {
    const at = object.key.slice(prefix.length).indexOf(delimiter);
    if (at !== -1) {
      commonPrefixes.add(object.key.slice(0, prefix.length + at + delimiter.length));
    } else if (objects.length < maxKeys) {
      objects.push(object);
    } else {
      isTruncated = true;
      break;
    }
  }
  return { objects, commonPrefixes: [...commonPrefixes].sort(), isTruncated };
};
