/*
 * A thin command-line driver over ONVIF's reference Media Signing library
 * (tests/third_party/media-signing-framework), for the interop tests.
 *
 *   oms_tool validate CA.pem IN.h264
 *       feeds every NAL unit of an Annex B file to the reference validator and prints
 *       one line per validation ("validation <authenticity> <nalus> <verdicts>")
 *       and a last "summary ..." line from the accumulated report.
 *   oms_tool sign KEY.pem CHAIN.pem IN.h264 OUT.h264 [epb]
 *       signs an Annex B file with the reference signer (CHAIN.pem: leaf first, root
 *       last) and writes it with each SEI before the slice it was asked for.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "includes/onvif_media_signing_common.h"
#include "includes/onvif_media_signing_signer.h"
#include "includes/onvif_media_signing_validator.h"

static uint8_t *read_file(const char *path, size_t *size) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  uint8_t *data = malloc(n > 0 ? (size_t)n : 1);
  if (data && fread(data, 1, (size_t)n, f) != (size_t)n) {
    free(data);
    data = NULL;
  }
  fclose(f);
  *size = (size_t)n;
  return data;
}

/* Next NAL unit (without its start code) at or after *pos; 0 when there is none. */
static size_t next_nal(const uint8_t *data, size_t size, size_t *pos, const uint8_t **nal) {
  size_t i = *pos;
  while (i + 3 <= size && !(data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1)) i++;
  if (i + 3 > size) return 0;
  size_t begin = i + 3, j = begin;
  while (j + 3 <= size && !(data[j] == 0 && data[j + 1] == 0 && (data[j + 2] == 1 || (data[j + 2] == 0 && j + 3 < size && data[j + 3] == 1)))) j++;
  size_t end = (j + 3 <= size) ? j : size;
  *nal = data + begin;
  *pos = end;
  return end - begin;
}

static uint8_t *with_start_code(const uint8_t *nal, size_t size) {
  uint8_t *out = malloc(size + 4);
  out[0] = out[1] = out[2] = 0;
  out[3] = 1;
  memcpy(out + 4, nal, size);
  return out;
}

static int validate(const char *ca_path, const char *in_path) {
  size_t ca_size = 0, size = 0;
  uint8_t *ca = read_file(ca_path, &ca_size);
  uint8_t *data = read_file(in_path, &size);
  if (!ca || !data) {
    fprintf(stderr, "cannot read %s or %s\n", ca_path, in_path);
    return 2;
  }
  onvif_media_signing_t *oms = onvif_media_signing_create(OMS_CODEC_H264);
  if (onvif_media_signing_set_trusted_certificate(oms, (const char *)ca, ca_size) != OMS_OK) {
    fprintf(stderr, "the reference validator refused %s\n", ca_path);
    return 2;
  }
  size_t pos = 0, n;
  const uint8_t *nal;
  while ((n = next_nal(data, size, &pos, &nal)) > 0) {
    uint8_t *buf = with_start_code(nal, n);
    onvif_media_signing_authenticity_t *auth = NULL;
    MediaSigningReturnCode rc = onvif_media_signing_add_nalu_and_authenticate(oms, buf, n + 4, &auth);
    free(buf);
    if (rc != OMS_OK) {
      printf("error %d\n", rc);
    }
    if (auth) {
      printf("validation %d %s %s\n", auth->latest_validation.authenticity,
          auth->latest_validation.nalu_str, auth->latest_validation.validation_str);
      onvif_media_signing_authenticity_report_free(auth);
    }
  }
  onvif_media_signing_authenticity_t *report = onvif_media_signing_get_authenticity_report(oms);
  if (report) {
    onvif_media_signing_accumulated_validation_t *acc = &report->accumulated_validation;
    printf("summary authenticity=%d provenance=%d received=%u validated=%u pending=%u "
           "serial=%s firmware=%s manufacturer=%s signer_version=%s\n",
        acc->authenticity, acc->provenance, acc->number_of_received_nalus,
        acc->number_of_validated_nalus, acc->number_of_pending_nalus,
        report->vendor_info.serial_number, report->vendor_info.firmware_version,
        report->vendor_info.manufacturer, report->version_on_signing_side);
    onvif_media_signing_authenticity_report_free(report);
  }
  onvif_media_signing_free(oms);
  free(ca);
  free(data);
  return 0;
}

/* H.264 7.4.1: emulation prevention over everything after the NAL header byte. */
static void write_escaped(FILE *out, const uint8_t *nal, size_t size) {
  static const uint8_t start[4] = {0, 0, 0, 1};
  fwrite(start, 1, 4, out);
  fputc(nal[0], out);
  int zeros = 0;
  for (size_t i = 1; i < size; i++) {
    if (zeros >= 2 && nal[i] <= 3) {
      fputc(3, out);
      zeros = 0;
    }
    fputc(nal[i], out);
    zeros = nal[i] == 0 ? zeros + 1 : 0;
  }
}

static int sign(const char *key_path, const char *chain_path, const char *in_path,
    const char *out_path, int epb) {
  size_t key_size = 0, chain_size = 0, size = 0;
  uint8_t *key = read_file(key_path, &key_size);
  uint8_t *chain = read_file(chain_path, &chain_size);
  uint8_t *data = read_file(in_path, &size);
  FILE *out = fopen(out_path, "wb");
  if (!key || !chain || !data || !out) {
    fprintf(stderr, "cannot read the key, chain or input, or write the output\n");
    return 2;
  }
  onvif_media_signing_t *oms = onvif_media_signing_create(OMS_CODEC_H264);
  if (onvif_media_signing_set_signing_key_pair(
          oms, (const char *)key, key_size, (const char *)chain, chain_size, false) != OMS_OK) {
    fprintf(stderr, "the reference signer refused the key pair\n");
    return 2;
  }
  onvif_media_signing_vendor_info_t vendor = {0};
  strcpy(vendor.manufacturer, "reference-signer");
  onvif_media_signing_set_vendor_info(oms, &vendor);
  onvif_media_signing_set_emulation_prevention_before_signing(oms, epb);
  size_t pos = 0, n;
  const uint8_t *nal;
  int64_t timestamp = 133000000000000000;
  while ((n = next_nal(data, size, &pos, &nal)) > 0) {
    uint8_t *buf = with_start_code(nal, n);
    int kind = nal[0] & 0x1f;
    if (kind == 1 || kind == 5) timestamp += 333333;
    if (onvif_media_signing_add_nalu_for_signing(oms, buf, n + 4, timestamp) != OMS_OK) {
      fprintf(stderr, "the reference signer refused a NAL unit of type %d\n", kind);
      return 2;
    }
    uint8_t *sei = NULL;
    size_t sei_size = 0;
    do {
      sei_size = 0;
      onvif_media_signing_get_sei(oms, &sei, &sei_size, NULL, buf, n + 4, NULL);
      if (sei_size > 0) {
        if (epb) {
          fwrite(sei, 1, sei_size, out);
        } else {
          write_escaped(out, sei + 4, sei_size - 4);
        }
        free(sei);
      }
    } while (sei_size > 0);
    fwrite(buf, 1, n + 4, out);
    free(buf);
  }
  fclose(out);
  onvif_media_signing_free(oms);
  free(key);
  free(chain);
  free(data);
  return 0;
}

int main(int argc, char **argv) {
  if (argc == 4 && strcmp(argv[1], "validate") == 0) return validate(argv[2], argv[3]);
  if ((argc == 6 || argc == 7) && strcmp(argv[1], "sign") == 0)
    return sign(argv[2], argv[3], argv[4], argv[5], argc == 7 && strcmp(argv[6], "epb") == 0);
  fprintf(stderr, "usage: oms_tool validate CA.pem IN.h264 | sign KEY.pem CHAIN.pem IN.h264 OUT.h264 [epb]\n");
  return 2;
}
