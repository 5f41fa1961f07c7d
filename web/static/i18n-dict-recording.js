// Texts of the recording consent, indicator and state, in French and English (merged by i18n-dict.js).
export const RECORDING = {
  fr: {
  },
  en: {
  },
};
