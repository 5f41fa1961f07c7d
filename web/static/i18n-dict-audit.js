// Texts of the audit trail page, in French and English (merged by i18n-dict.js).
export const AUDIT = {
  fr: {
  },
  en: {
  },
};
