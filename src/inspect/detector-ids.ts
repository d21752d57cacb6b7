/** The detectors a policy can name in `classification.detect` (implemented in detect.ts, loaded only when used). */
export const DETECTORS = ['payment-card', 'iban', 'us-ssn', 'email', 'phone', 'secret'] as const;
export type DetectorId = (typeof DETECTORS)[number];
