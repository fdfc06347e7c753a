// The JupyterLab extension template's rules. Passed with --config because
// it also checks the feed widget's stylesheet in ../pgmagic/_static, which
// is outside this folder's config lookup.
export default {
  extends: [
    'stylelint-config-recommended',
    'stylelint-config-standard',
    'stylelint-prettier/recommended'
  ],
  plugins: ['stylelint-csstree-validator'],
  rules: {
    'csstree/validator': true,
    'property-no-vendor-prefix': null,
    'selector-class-pattern': '^([a-z][A-z\\d]*)(-[A-z\\d]+)*$',
    'selector-no-vendor-prefix': null,
    'value-no-vendor-prefix': null
  }
};
